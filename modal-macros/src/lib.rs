//! Procedural macros of modal-rs. Each parses its input, validates it (collecting every error,
//! spanned on the offending tokens and naming what is allowed) and expands to code that uses
//! only `::modal::__private` paths. Use them through the `modal` crate.

mod app;
mod attr;
mod cls;
mod ctxt;
mod entrypoint;
mod function;
mod main_attr;
mod methods;
mod modifiers;
mod outcome;
#[path = "../../modal-runtime/src/app/param_table.rs"]
mod param_table;
mod params;
#[path = "../../modal-runtime/src/app/rules.rs"]
mod rules;
mod sig;

use proc_macro::TokenStream;

fn emit(result: syn::Result<proc_macro2::TokenStream>) -> TokenStream {
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Declares an app: `modal::app!(APP = App::new("hello").tags([("team", "ml")]));`
#[proc_macro]
pub fn app(input: TokenStream) -> TokenStream {
    emit(app::expand(input.into()))
}

/// Registers a function with an app; calls to it run in containers.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(function::expand(attr.into(), item.into()))
}

/// A function run on this machine while its app runs, with its arguments as CLI flags.
#[proc_macro_attribute]
pub fn local_entrypoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(entrypoint::expand(attr.into(), item.into()))
}

/// An async `main` that hands over to modal's container entrypoint first.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(main_attr::expand(attr.into(), item.into()))
}

/// Declares a class: `#[modal::cls(app = APP, ...)]` on a struct whose `#[modal::parameter]`
/// fields select a pool of containers; its `impl` block carries `#[modal::methods]`.
#[proc_macro_attribute]
pub fn cls(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(cls::expand(attr.into(), item.into()))
}

/// The `impl` block of a `#[modal::cls]` struct: `#[modal::enter]`, `#[modal::exit]`,
/// `#[modal::method]` and `#[modal::batched]` methods.
#[proc_macro_attribute]
pub fn methods(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(methods::expand(attr.into(), item.into()))
}

fn misplaced(what: &str, place: &str, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    let err = syn::Error::new(proc_macro2::Span::call_site(), format!("{what} {place}"))
        .into_compile_error();
    quote::quote!(#err #item).into()
}

/// A class parameter (inside a `#[modal::cls]` struct).
#[proc_macro_attribute]
pub fn parameter(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::parameter]",
        "marks a field of a struct declared with #[modal::cls]",
        item,
    )
}

/// A method run once per container before its first input (inside `#[modal::methods]`).
#[proc_macro_attribute]
pub fn enter(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::enter]",
        "goes on a method inside an `impl` block marked #[modal::methods]",
        item,
    )
}

/// A method run when a container stops (inside `#[modal::methods]`).
#[proc_macro_attribute]
pub fn exit(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::exit]",
        "goes on a method inside an `impl` block marked #[modal::methods]",
        item,
    )
}

/// A method callers can call (inside `#[modal::methods]`).
#[proc_macro_attribute]
pub fn method(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::method]",
        "goes on a method inside an `impl` block marked #[modal::methods]",
        item,
    )
}

/// Concurrent inputs per container: under `#[modal::function]` or `#[modal::cls]`.
#[proc_macro_attribute]
pub fn concurrent(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::concurrent]",
        "goes under #[modal::function] or #[modal::cls] (attributes expand top-down)",
        item,
    )
}

/// Dynamic batching: under `#[modal::function]`, or on one method in `#[modal::methods]`.
#[proc_macro_attribute]
pub fn batched(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        "#[modal::batched]",
        "goes under #[modal::function], or on one method inside #[modal::methods]",
        item,
    )
}
