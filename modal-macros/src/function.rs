//! `#[modal::function(app = APP, ...)]` (with `#[modal::concurrent]` or `#[modal::batched]`
//! under it): the implementation, its registration, and a typed handle named like the function.
//! Three shapes: a plain function, a generator (`impl Iterator`/`impl Stream` return), a batched
//! function (`Vec<T>` in, `Vec<R>` out).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, Ident, ItemFn, PathArguments, Type};

use crate::ctxt::Ctxt;
use crate::modifiers::{self, Modifiers};
use crate::outcome;
use crate::param_table::Target;
use crate::params::{self, FunctionAttr};
use crate::sig::{self, Return, Signature};

/// `Vec<T>` → `T`.
pub(crate) fn vec_item(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// What a batched function's signature is: its item type and its result item type.
pub(crate) struct BatchShape {
    pub(crate) item: Type,
    pub(crate) result_item: Type,
    pub(crate) fallible: bool,
}

/// Checks `fn f(xs: Vec<T>) -> Vec<R>` (or `Result<Vec<R>, E>`).
pub(crate) fn batch_shape(
    cx: &mut Ctxt,
    f: &syn::Signature,
    sig: &Signature,
    span: Span,
) -> Option<BatchShape> {
    let wrong = "a #[modal::batched] function takes one `Vec<T>` argument and returns `Vec<R>` (or `Result<Vec<R>, E>`); callers call it with one `T` at a time";
    let item = match sig.args.as_slice() {
        [one] => match vec_item(&one.ty) {
            Some(t) => t.clone(),
            None => {
                cx.error_spanned_by(&one.ty, wrong);
                return None;
            }
        },
        _ => {
            cx.push(syn::Error::new(
                if sig.args.is_empty() {
                    f.ident.span()
                } else {
                    f.inputs.span()
                },
                wrong,
            ));
            return None;
        }
    };
    let (result_item, fallible) = match &sig.ret {
        Return::Plain(t) => (vec_item(t).cloned(), false),
        Return::Result { ok } => (vec_item(ok).cloned(), true),
        _ => (None, false),
    };
    let Some(result_item) = result_item else {
        let at = match &f.output {
            syn::ReturnType::Type(_, t) => t.span(),
            syn::ReturnType::Default => span,
        };
        cx.push(syn::Error::new(at, wrong));
        return None;
    };
    Some(BatchShape {
        item,
        result_item,
        fallible,
    })
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let Ok(mut f) = syn::parse2::<ItemFn>(item.clone()) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[modal::function] goes on a free `fn` or `async fn`",
        ));
    };
    let mods = modifiers::take(&mut cx, &mut f.attrs, true);
    let parsed = params::parse_attr(&mut cx, attr, Target::Function);
    let sig = sig::analyze(&mut cx, &f, "a #[modal::function]");
    if let Some(a) = &parsed
        && let Some(span) = a.has_schedule
        && !sig.args.is_empty()
    {
        cx.push(syn::Error::new(
            span,
            format!("function `{}` has a schedule, so it must take no arguments (it is called with none)", f.sig.ident),
        ));
    }
    let is_generator = matches!(sig.ret, Return::Generator { .. });
    if let Some(a) = &parsed
        && let Some((declared, span)) = a.is_generator
        && declared != is_generator
    {
        cx.push(syn::Error::new(
            span,
            format!(
                "`is_generator = {declared}` contradicts the signature: `{}` {} a generator (a generator returns `impl Iterator<Item = T>` or `impl Stream<Item = T>`)",
                f.sig.ident,
                if is_generator { "is" } else { "is not" }
            ),
        ));
    }
    if is_generator
        && let Some(a) = &parsed
        && let Some(span) = a.retries
    {
        cx.push(syn::Error::new(
            span,
            "a generator cannot have `retries`: a retry would repeat items already delivered",
        ));
    }
    let batch = match mods.batch {
        Some((_, _, span)) if is_generator => {
            cx.push(syn::Error::new(
                span,
                "a generator cannot be #[modal::batched]",
            ));
            None
        }
        Some((_, _, span)) => batch_shape(&mut cx, &f.sig, &sig, span),
        None => None,
    };
    if let Err(e) = cx.check() {
        // Keep the function (without the modifiers it consumed) so that the rest of the crate
        // still type-checks against it.
        let mut out = e.into_compile_error();
        out.extend(quote!(#f));
        return Ok(out);
    }
    let Some(attr) = parsed else { return Ok(item) };
    Ok(generate(&f, &attr, &sig, &mods, batch.as_ref()))
}

fn generate(
    f: &ItemFn,
    attr: &FunctionAttr,
    sig: &Signature,
    mods: &Modifiers,
    batch: Option<&BatchShape>,
) -> TokenStream {
    let ident = &f.sig.ident;
    let vis = &f.vis;
    let app = &attr.app;
    let tag = attr
        .name
        .as_ref()
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| ident.to_string());
    let handle_ty = format_ident!("__modal_handle_{}", ident);
    let impl_ident = format_ident!("__modal_impl_{}", ident);
    let docs: Vec<&syn::Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let other_attrs: Vec<&syn::Attribute> = f
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc"))
        .collect();
    let block = &f.block;
    let asyncness = &f.sig.asyncness;
    let output = &f.sig.output;
    let impl_idents: Vec<&Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let impl_types: Vec<&Type> = sig.args.iter().map(|a| &a.ty).collect();
    let impl_params = quote!(#(#impl_idents: #impl_types),*);
    // The user's function keeps its `mut` bindings; the generated wrappers do not need them.
    let impl_decl_params = sig.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        let mutability = a.mutable.then(|| quote!(mut));
        quote!(#mutability #ident: #ty)
    });
    let takes_arguments = !sig.args.is_empty();
    let assignments = &attr.assignments;
    let modifier_assignments = mods.assignments();

    // What callers pass and get back: the function's own arguments and value, except for a
    // batched function (one item in, one result item out).
    let (call_idents, call_types, value_ty): (Vec<Ident>, Vec<Type>, Type) = match batch {
        Some(b) => (
            vec![impl_idents[0].clone()],
            vec![b.item.clone()],
            b.result_item.clone(),
        ),
        None => (
            impl_idents.iter().map(|i| (*i).clone()).collect(),
            impl_types.iter().map(|t| (*t).clone()).collect(),
            sig.ret.value_type(),
        ),
    };
    let args_tuple = quote!((#(#call_types,)*));
    let call_params = quote!(#(#call_idents: #call_types),*);
    let tuple_expr = quote!((#(#call_idents,)*));

    let arg_checks = call_types
        .iter()
        .map(|t| quote_spanned!(t.span()=> ::modal::__private::assert_remote_arg::<#t>();));
    let ret_span = match &f.sig.output {
        syn::ReturnType::Type(_, t) => t.span(),
        syn::ReturnType::Default => ident.span(),
    };
    let ret_check =
        quote_spanned!(ret_span=> ::modal::__private::assert_remote_value::<#value_ty>(););
    let call_impl = if sig.is_async {
        quote!(#impl_ident(#(#impl_idents),*).await)
    } else {
        quote!(#impl_ident(#(#impl_idents),*))
    };
    let decode = quote!(
        let (#(#impl_idents,)*): (#(#impl_types,)*) = match ::modal::__private::decode_args(&__input) {
            ::core::result::Result::Ok(__a) => __a,
            ::core::result::Result::Err(__e) => return ::modal::__private::Outcome::BadInput(__e),
        };
    );

    let (invoker, spec_kind) = match (&sig.ret, batch) {
        (_, Some(b)) => {
            let item = &b.item;
            let run = if sig.is_async {
                quote!(#impl_ident(__xs).await)
            } else {
                quote!(match ::modal::__private::blocking(move || #impl_ident(__xs)).await {
                    ::core::result::Result::Ok(__r) => __r,
                    ::core::result::Result::Err(__o) => return ::modal::__private::batch_failed(__n, &__o),
                })
            };
            let finish = outcome::batch_outcomes(b.fallible);
            (
                quote!(
                    fn __modal_invoke(__inputs: ::std::vec::Vec<::modal::__private::Bytes>) -> ::modal::__private::BatchFuture {
                        ::std::boxed::Box::pin(async move {
                            let __n = __inputs.len();
                            let __xs: ::std::vec::Vec<#item> = match ::modal::__private::decode_batch::<#item>(&__inputs) {
                                ::core::result::Result::Ok(__x) => __x,
                                ::core::result::Result::Err(__o) => return __o,
                            };
                            let __ret = #run;
                            #finish
                        })
                    }
                    const __MODAL_INVOKER: ::modal::__private::Invoker = ::modal::__private::Invoker::Batched(__modal_invoke);
                ),
                quote!(),
            )
        }
        (Return::Generator { stream, .. }, None) => {
            let drain = outcome::drain(
                *stream,
                sig.is_async,
                &quote!(#impl_ident(#(#impl_idents),*)),
            );
            (
                quote!(
                    fn __modal_invoke(__input: ::modal::__private::Bytes, __sink: ::modal::__private::GeneratorSink) -> ::modal::__private::OutcomeFuture {
                        ::std::boxed::Box::pin(async move {
                            #decode
                            #drain
                        })
                    }
                    const __MODAL_INVOKER: ::modal::__private::Invoker = ::modal::__private::Invoker::Generator(__modal_invoke);
                ),
                quote!(spec.generator_methods = ::std::vec![::std::string::String::new()];),
            )
        }
        (ret, None) => {
            let to_outcome = outcome::to_outcome(ret);
            if sig.is_async {
                (
                    quote!(
                        fn __modal_invoke(__input: ::modal::__private::Bytes) -> ::modal::__private::OutcomeFuture {
                            ::std::boxed::Box::pin(async move {
                                #decode
                                let __ret = #call_impl;
                                #to_outcome
                            })
                        }
                        const __MODAL_INVOKER: ::modal::__private::Invoker = ::modal::__private::Invoker::Async(__modal_invoke);
                    ),
                    quote!(),
                )
            } else {
                (
                    quote!(
                        fn __modal_invoke(__input: ::modal::__private::Bytes) -> ::modal::__private::Outcome {
                            #decode
                            let __ret = #call_impl;
                            #to_outcome
                        }
                        const __MODAL_INVOKER: ::modal::__private::Invoker = ::modal::__private::Invoker::Sync(__modal_invoke);
                    ),
                    quote!(),
                )
            }
        }
    };

    let local = if sig.is_async {
        quote!(
            /// Runs the function here, in this process.
            pub async fn local(&self, #impl_params) #output { #impl_ident(#(#impl_idents),*).await }
        )
    } else {
        quote!(
            /// Runs the function here, in this process.
            pub fn local(&self, #impl_params) #output { #impl_ident(#(#impl_idents),*) }
        )
    };
    let (map_item, map_conv) = match call_types.as_slice() {
        [t] => (quote!(#t), quote!(.map(|__x| (__x,)))),
        _ => (args_tuple.clone(), quote!()),
    };

    let handle = if matches!(sig.ret, Return::Generator { .. }) && batch.is_none() {
        quote! {
            static __MODAL_GENERATOR: ::modal::Generator<#args_tuple, #value_ty> =
                ::modal::Generator::__new(::modal::Function::__new(&__MODAL_REGISTRATION));

            impl ::core::ops::Deref for #handle_ty {
                type Target = ::modal::Generator<#args_tuple, #value_ty>;
                fn deref(&self) -> &Self::Target {
                    &__MODAL_GENERATOR
                }
            }

            #[allow(dead_code)]
            impl #handle_ty {
                /// Runs the generator in a container; its items arrive as they are produced.
                pub fn remote_gen(&self, #call_params) -> ::modal::GenStream<#value_ty> {
                    __MODAL_GENERATOR.remote_gen_args(#tuple_expr)
                }

                /// Not available: a generator is called with `remote_gen`.
                pub fn map<__I>(&self, _inputs: __I) -> ::core::convert::Infallible
                where
                    __I: ::modal::__private::GeneratorMisuse,
                {
                    ::core::unreachable!()
                }

                /// Not available: a generator is called with `remote_gen`.
                pub fn spawn<__I>(&self, _inputs: __I) -> ::core::convert::Infallible
                where
                    __I: ::modal::__private::GeneratorMisuse,
                {
                    ::core::unreachable!()
                }

                #local
            }
        }
    } else {
        quote! {
            static __MODAL_FUNCTION: ::modal::Function<#args_tuple, #value_ty> =
                ::modal::Function::__new(&__MODAL_REGISTRATION);

            impl ::core::ops::Deref for #handle_ty {
                type Target = ::modal::Function<#args_tuple, #value_ty>;
                fn deref(&self) -> &Self::Target {
                    &__MODAL_FUNCTION
                }
            }

            #[allow(dead_code)]
            impl #handle_ty {
                /// Runs the function in a container and waits for its result.
                pub async fn remote(&self, #call_params) -> ::modal::Result<#value_ty> {
                    __MODAL_FUNCTION.remote_args(#tuple_expr).await
                }

                /// Starts the function in a container; read the result later from the call.
                pub async fn spawn(&self, #call_params) -> ::modal::Result<::modal::FunctionCall<#value_ty>> {
                    __MODAL_FUNCTION.spawn_args(#tuple_expr).await
                }

                /// Runs the function once per input, in parallel containers.
                pub fn map<__I>(&self, inputs: __I) -> ::modal::MapCall<#args_tuple, #value_ty>
                where
                    __I: ::core::iter::IntoIterator<Item = #map_item>,
                    __I::IntoIter: ::core::marker::Send + 'static,
                {
                    __MODAL_FUNCTION.starmap(::core::iter::IntoIterator::into_iter(inputs) #map_conv)
                }

                /// Runs the function once per input and discards the results.
                pub fn for_each<__I>(&self, inputs: __I) -> ::modal::ForEach<#args_tuple, #value_ty>
                where
                    __I: ::core::iter::IntoIterator<Item = #map_item>,
                    __I::IntoIter: ::core::marker::Send + 'static,
                {
                    __MODAL_FUNCTION.for_each_args(::core::iter::IntoIterator::into_iter(inputs) #map_conv)
                }

                #local
            }
        }
    };

    quote! {
        #[allow(non_camel_case_types)]
        #[doc(hidden)]
        #vis struct #handle_ty { _private: () }

        #(#docs)*
        #[allow(non_upper_case_globals)]
        #vis static #ident: #handle_ty = #handle_ty { _private: () };

        const _: () = {
            #(#other_attrs)*
            #asyncness fn #impl_ident(#(#impl_decl_params),*) #output #block

            #[allow(dead_code)]
            fn __modal_type_checks() {
                #(#arg_checks)*
                #ret_check
            }

            fn __modal_spec() -> ::modal::__private::FunctionSpec {
                let mut spec = ::modal::__private::FunctionSpec::new(#tag);
                spec.takes_arguments = #takes_arguments;
                #(#assignments)*
                #modifier_assignments
                #spec_kind
                spec
            }

            #invoker

            static __MODAL_REGISTRATION: ::modal::__private::FunctionRegistration =
                ::modal::__private::FunctionRegistration {
                    app: || &*#app,
                    tag: #tag,
                    implementation: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    types: || (
                        ::core::any::type_name::<#args_tuple>(),
                        ::core::any::type_name::<#value_ty>(),
                    ),
                    spec: __modal_spec,
                    invoker: __MODAL_INVOKER,
                    describe_result: || {
                        #[allow(unused_imports)]
                        use ::modal::__private::{DescribeViaDebug as _, DescribeNone as _};
                        (&&::modal::__private::DescribeProbe::<#value_ty>::new()).__modal_describe()
                    },
                    bound: ::modal::__private::BoundSlot::new(),
                };
            ::modal::__private::inventory::submit! {
                ::modal::__private::FunctionEntry(&__MODAL_REGISTRATION)
            }

            #handle
        };
    }
}
