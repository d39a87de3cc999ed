//! `#[modal::methods]` on a class's `impl` block: `#[modal::enter]`, `#[modal::exit]`,
//! `#[modal::method]` and `#[modal::batched]` methods become the class's lifecycle and
//! dispatch (`ClassMethods`), and typed handles on `{Name}Cls`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, Type};

use crate::ctxt::Ctxt;
use crate::function::{BatchShape, batch_shape};
use crate::modifiers;
use crate::outcome;
use crate::sig::{Arg, Return, classify};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Enter,
    Exit,
    Method,
    Batched,
}

struct Method {
    role: Role,
    ident: syn::Ident,
    mutable: bool,
    is_async: bool,
    args: Vec<Arg>,
    ret: Return,
    batch: Option<(u64, u64, BatchShape)>,
}

/// `(max_batch_size, wait_ms)` of a `#[modal::batched]` method, and where it was written.
type BatchAttr = (u64, u64, Span);

fn role_of(cx: &mut Ctxt, f: &mut ImplItemFn) -> Option<(Role, Option<BatchAttr>)> {
    let mut role = None;
    let mut keep = Vec::new();
    let mut set = |cx: &mut Ctxt, r: Role, a: &syn::Attribute| {
        if role.is_some() {
            cx.error_spanned_by(a, "one of #[modal::enter], #[modal::exit], #[modal::method] or #[modal::batched] per method");
        }
        role = Some(r);
    };
    let mut batched_attr = Vec::new();
    for a in f.attrs.drain(..) {
        if modifiers::is(&a, "enter") {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                cx.error_spanned_by(
                    &a,
                    "#[modal::enter] takes no options (memory snapshots are not available)",
                );
            }
            set(cx, Role::Enter, &a);
        } else if modifiers::is(&a, "exit") {
            set(cx, Role::Exit, &a);
        } else if modifiers::is(&a, "method") {
            set(cx, Role::Method, &a);
        } else if modifiers::is(&a, "batched") {
            set(cx, Role::Batched, &a);
            batched_attr.push(a);
        } else if modifiers::is(&a, "concurrent") {
            cx.error_spanned_by(
                &a,
                "#[modal::concurrent] goes on the class's struct, under #[modal::cls]",
            );
        } else {
            keep.push(a);
        }
    }
    f.attrs = keep;
    let batch = if batched_attr.is_empty() {
        None
    } else {
        modifiers::take(cx, &mut batched_attr, true).batch
    };
    role.map(|r| (r, batch))
}

fn analyze(cx: &mut Ctxt, f: &ImplItemFn, role: Role) -> Option<(bool, Vec<Arg>, Return)> {
    let what = match role {
        Role::Enter => "#[modal::enter]",
        Role::Exit => "#[modal::exit]",
        Role::Method => "#[modal::method]",
        Role::Batched => "#[modal::batched]",
    };
    let Some(receiver) = f.sig.receiver() else {
        cx.push(syn::Error::new(
            f.sig.ident.span(),
            format!("a {what} takes `&self` or `&mut self` (it runs on the container's instance)"),
        ));
        return None;
    };
    if receiver.reference.is_none() {
        cx.error_spanned_by(
            receiver,
            format!("a {what} takes `&self` or `&mut self`, not `self`"),
        );
        return None;
    }
    if !f.sig.generics.params.is_empty() {
        cx.error_spanned_by(&f.sig.generics, format!("a {what} cannot be generic"));
    }
    let mut args = Vec::new();
    for input in f.sig.inputs.iter().skip(1) {
        let FnArg::Typed(pt) = input else { continue };
        match &*pt.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                args.push(Arg {
                    ident: pi.ident.clone(),
                    ty: (*pt.ty).clone(),
                    mutable: pi.mutability.is_some(),
                });
            }
            other => cx.error_spanned_by(
                other,
                "arguments must be plain names (`x: T`), not patterns",
            ),
        }
    }
    if matches!(role, Role::Enter | Role::Exit) && !args.is_empty() {
        cx.error_spanned_by(
            &f.sig.inputs,
            format!("a {what} takes no arguments besides `self`"),
        );
    }
    let ret = match &f.sig.output {
        syn::ReturnType::Default => Return::Unit,
        syn::ReturnType::Type(_, t) => classify(t),
    };
    Some((receiver.mutability.is_some(), args, ret))
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[modal::methods] takes no parameters",
        ));
    }
    let mut imp: ItemImpl = syn::parse2(item).map_err(|_| {
        syn::Error::new(
            Span::call_site(),
            "#[modal::methods] goes on the `impl` block of a #[modal::cls] struct",
        )
    })?;
    let mut cx = Ctxt::new();
    if let Some((_, path, _)) = &imp.trait_ {
        cx.error_spanned_by(
            path,
            "#[modal::methods] goes on an inherent `impl` block, not a trait impl",
        );
    }
    if !imp.generics.params.is_empty() {
        cx.error_spanned_by(&imp.generics, "a class's `impl` block cannot be generic");
    }
    let class = match &*imp.self_ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            p.path.segments[0].ident.clone()
        }
        other => {
            cx.error_spanned_by(
                other,
                "#[modal::methods] goes on `impl Name` where `Name` is a #[modal::cls] struct",
            );
            return Err(cx
                .check()
                .err()
                .unwrap_or_else(|| syn::Error::new(other.span(), "invalid class")));
        }
    };
    let mut methods = Vec::new();
    let mut declared = 0usize;
    for item in &mut imp.items {
        let ImplItem::Fn(f) = item else { continue };
        let Some((role, batch)) = role_of(&mut cx, f) else {
            continue;
        };
        if matches!(role, Role::Method | Role::Batched) {
            declared += 1;
        }
        let Some((mutable, args, ret)) = analyze(&mut cx, f, role) else {
            continue;
        };
        let batch = match (role, batch) {
            (Role::Batched, Some((size, wait, span))) => {
                let sig = crate::sig::Signature {
                    args: args.clone(),
                    ret: classify_owned(&ret),
                    is_async: f.sig.asyncness.is_some(),
                };
                batch_shape(&mut cx, &f.sig, &sig, span).map(|b| (size, wait, b))
            }
            _ => None,
        };
        methods.push(Method {
            role,
            ident: f.sig.ident.clone(),
            mutable,
            is_async: f.sig.asyncness.is_some(),
            args,
            ret,
            batch,
        });
    }
    let callable: Vec<&Method> = methods
        .iter()
        .filter(|m| matches!(m.role, Role::Method | Role::Batched))
        .collect();
    let batched: Vec<&Method> = methods.iter().filter(|m| m.role == Role::Batched).collect();
    if declared == 0 {
        cx.push(syn::Error::new(
            imp.self_ty.span(),
            "a class needs at least one #[modal::method]",
        ));
    }
    if batched.len() > 1 {
        cx.push(syn::Error::new(
            batched[1].ident.span(),
            "a class can have only one #[modal::batched] method",
        ));
    } else if batched.len() == 1 && callable.len() > 1 {
        let other = callable
            .iter()
            .find(|m| m.role == Role::Method)
            .map_or(Span::call_site(), |m| m.ident.span());
        cx.push(syn::Error::new(
            other,
            "a class with a #[modal::batched] method can have no other methods",
        ));
    }
    if let Err(e) = cx.check() {
        // The impl block (attributes consumed) and an empty dispatch, so that the only errors
        // reported are the ones above.
        let mut out = e.into_compile_error();
        out.extend(generate(&imp, &class, &[]));
        return Ok(out);
    }
    Ok(generate(&imp, &class, &methods))
}

/// A copy of a return shape (the signature analysis owns its types).
fn classify_owned(r: &Return) -> Return {
    match r {
        Return::Unit => Return::Unit,
        Return::Plain(t) => Return::Plain(t.clone()),
        Return::Result { ok } => Return::Result { ok: ok.clone() },
        Return::Generator { item, stream } => Return::Generator {
            item: item.clone(),
            stream: *stream,
        },
    }
}

fn lock(mutable: bool, is_async: bool) -> TokenStream {
    match (mutable, is_async) {
        (true, true) => quote!(let mut __g = __cell.0.write().await;),
        (false, true) => quote!(let __g = __cell.0.read().await;),
        (true, false) => quote!(let mut __g = __cell.0.blocking_write();),
        (false, false) => quote!(let __g = __cell.0.blocking_read();),
    }
}

fn hook(m: &Method, class: &str) -> TokenStream {
    let ident = &m.ident;
    let name = format!("{class}::{ident}");
    let result = match &m.ret {
        Return::Result { .. } => {
            let err = outcome::user_error(&quote!(__e));
            quote!(match __ret {
                ::core::result::Result::Ok(_) => ::core::result::Result::Ok(()),
                ::core::result::Result::Err(__e) => ::core::result::Result::Err(::modal::__private::hook_failure(#name, #err)),
            })
        }
        _ => quote!({
            let _ = __ret;
            ::core::result::Result::<(), ::std::string::String>::Ok(())
        }),
    };
    let lock = lock(m.mutable, m.is_async);
    if m.is_async {
        quote!({
            let __cell = ::std::sync::Arc::clone(&__cell);
            ::modal::__private::guard_hook(#name, async move {
                #lock
                let __ret = __g.#ident().await;
                #result
            })
            .await?;
        })
    } else {
        quote!({
            let __cell = ::std::sync::Arc::clone(&__cell);
            match ::modal::__private::blocking(move || {
                #lock
                let __ret = __g.#ident();
                #result
            })
            .await
            {
                ::core::result::Result::Ok(__r) => __r?,
                ::core::result::Result::Err(__o) => return ::core::result::Result::Err(::modal::__private::hook_failure(#name, __o)),
            }
        })
    }
}

fn generate(imp: &ItemImpl, class: &syn::Ident, methods: &[Method]) -> TokenStream {
    let class_name = class.to_string();
    let cls_ty = format_ident!("{}Cls", class);
    let callable: Vec<&Method> = methods
        .iter()
        .filter(|m| matches!(m.role, Role::Method | Role::Batched))
        .collect();
    let names: Vec<String> = callable.iter().map(|m| m.ident.to_string()).collect();
    let generators: Vec<String> = callable
        .iter()
        .filter(|m| matches!(m.ret, Return::Generator { .. }))
        .map(|m| m.ident.to_string())
        .collect();
    let batched = match callable.iter().find_map(|m| m.batch.as_ref()) {
        Some((size, wait, _)) => quote!(::core::option::Option::Some((#size, #wait))),
        None => quote!(::core::option::Option::None),
    };
    let enters: Vec<TokenStream> = methods
        .iter()
        .filter(|m| m.role == Role::Enter)
        .map(|m| hook(m, &class_name))
        .collect();
    let exits: Vec<TokenStream> = methods
        .iter()
        .filter(|m| m.role == Role::Exit)
        .map(|m| hook(m, &class_name))
        .collect();

    let calls = callable.iter().filter(|m| m.role == Role::Method).map(|m| {
        let ident = &m.ident;
        let name = ident.to_string();
        let arg_idents: Vec<&syn::Ident> = m.args.iter().map(|a| &a.ident).collect();
        let arg_types: Vec<&Type> = m.args.iter().map(|a| &a.ty).collect();
        let decode = quote!(
            let (#(#arg_idents,)*): (#(#arg_types,)*) = match ::modal::__private::decode_args(&__input) {
                ::core::result::Result::Ok(__a) => __a,
                ::core::result::Result::Err(__e) => return ::modal::__private::Outcome::BadInput(__e),
            };
        );
        let lock = lock(m.mutable, m.is_async);
        let call = quote!(__g.#ident(#(#arg_idents),*));
        let body = match (&m.ret, m.is_async) {
            (Return::Generator { stream, .. }, _) => {
                let drain = if *stream {
                    let c = if m.is_async { quote!(#call.await) } else { call.clone() };
                    quote!({ #lock ::modal::__private::drain_stream(#c, &__sink).await })
                } else if m.is_async {
                    quote!({
                        #lock
                        let __items: ::std::vec::Vec<_> = #call.await.collect();
                        ::modal::__private::drain_iter(__items, &__sink)
                    })
                } else {
                    quote!(match ::modal::__private::blocking(move || { #lock ::modal::__private::drain_iter(#call, &__sink) }).await {
                        ::core::result::Result::Ok(__o) | ::core::result::Result::Err(__o) => __o,
                    })
                };
                quote!({
                    let ::core::option::Option::Some(__sink) = __sink else {
                        return ::modal::__private::Outcome::BadInput(::std::format!("`{}.{}` is a generator: call it with `remote_gen`", #class_name, #name));
                    };
                    #drain
                })
            }
            (ret, true) => {
                let to = outcome::to_outcome(ret);
                quote!({ #lock let __ret = #call.await; #to })
            }
            (ret, false) => {
                let to = outcome::to_outcome(ret);
                quote!(match ::modal::__private::blocking(move || { #lock let __ret = #call; #to }).await {
                    ::core::result::Result::Ok(__o) | ::core::result::Result::Err(__o) => __o,
                })
            }
        };
        quote!(#name => ::std::boxed::Box::pin(async move { #decode #body }),)
    });

    let batch_call = callable.iter().find_map(|m| m.batch.as_ref().map(|b| (m, b))).map(|(m, (_, _, shape))| {
        let ident = &m.ident;
        let name = ident.to_string();
        let item = &shape.item;
        let lock = lock(m.mutable, m.is_async);
        let run = if m.is_async {
            quote!({ #lock __g.#ident(__xs).await })
        } else {
            quote!(match ::modal::__private::blocking(move || { #lock __g.#ident(__xs) }).await {
                ::core::result::Result::Ok(__r) => __r,
                ::core::result::Result::Err(__o) => return ::modal::__private::batch_failed(__n, &__o),
            })
        };
        let finish = outcome::batch_outcomes(shape.fallible);
        quote!(#name => ::std::boxed::Box::pin(async move {
            let __n = __inputs.len();
            let __xs: ::std::vec::Vec<#item> = match ::modal::__private::decode_batch::<#item>(&__inputs) {
                ::core::result::Result::Ok(__x) => __x,
                ::core::result::Result::Err(__o) => return __o,
            };
            let __ret = #run;
            #finish
        }),)
    });

    let handles = callable.iter().map(|m| {
        let ident = &m.ident;
        let name = ident.to_string();
        let doc = format!("A handle to `{class_name}.{name}`.");
        let (types, value) = match &m.batch {
            Some((_, _, shape)) => {
                let (item, out) = (&shape.item, &shape.result_item);
                (quote!((#item,)), quote!(#out))
            }
            None => {
                let t: Vec<&Type> = m.args.iter().map(|a| &a.ty).collect();
                let v = m.ret.value_type();
                (quote!((#(#t,)*)), quote!(#v))
            }
        };
        if matches!(m.ret, Return::Generator { .. }) {
            quote!(
                #[doc = #doc]
                pub fn #ident(&self) -> ::modal::Generator<#types, #value> { self.__core().generator(#name) }
            )
        } else {
            quote!(
                #[doc = #doc]
                pub fn #ident(&self) -> ::modal::Function<#types, #value> { self.__core().method(#name) }
            )
        }
    });

    let checks = callable.iter().flat_map(|m| {
        let ts: Vec<TokenStream> = match &m.batch {
            Some((_, _, s)) => {
                let (a, b) = (&s.item, &s.result_item);
                vec![quote!(::modal::__private::assert_remote_arg::<#a>();), quote!(::modal::__private::assert_remote_value::<#b>();)]
            }
            None => {
                let mut v: Vec<TokenStream> = m
                    .args
                    .iter()
                    .map(|a| {
                        let t = &a.ty;
                        quote::quote_spanned!(t.span()=> ::modal::__private::assert_remote_arg::<#t>();)
                    })
                    .collect();
                let r = m.ret.value_type();
                v.push(quote!(::modal::__private::assert_remote_value::<#r>();));
                v
            }
        };
        ts
    });

    quote! {
        #imp

        const _: () = {
            #[allow(dead_code)]
            fn __modal_type_checks() {
                #(#checks)*
            }

            impl ::modal::__private::ClassMethods for #class {
                const METHODS: &'static [&'static str] = &[#(#names),*];
                const GENERATORS: &'static [&'static str] = &[#(#generators),*];
                const BATCHED: ::core::option::Option<(u64, u64)> = #batched;

                fn __enter(__cell: ::std::sync::Arc<::modal::__private::ClassCell<Self>>)
                    -> ::std::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ::core::result::Result<(), ::std::string::String>> + ::core::marker::Send>>
                {
                    ::std::boxed::Box::pin(async move {
                        #(#enters)*
                        let _ = &__cell;
                        ::core::result::Result::Ok(())
                    })
                }

                fn __exit(__cell: ::std::sync::Arc<::modal::__private::ClassCell<Self>>)
                    -> ::std::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ()> + ::core::marker::Send>>
                {
                    ::std::boxed::Box::pin(async move {
                        let __run = async move {
                            #(#exits)*
                            let _ = &__cell;
                            ::core::result::Result::<(), ::std::string::String>::Ok(())
                        };
                        if let ::core::result::Result::Err(__e) = __run.await {
                            ::modal::__private::hook_error(&__e);
                        }
                    })
                }

                #[allow(unused_variables)]
                fn __call(
                    __cell: ::std::sync::Arc<::modal::__private::ClassCell<Self>>,
                    __method: ::std::string::String,
                    __input: ::modal::__private::Bytes,
                    __sink: ::core::option::Option<::modal::__private::GeneratorSink>,
                ) -> ::modal::__private::OutcomeFuture {
                    match __method.as_str() {
                        #(#calls)*
                        _ => ::std::boxed::Box::pin(async move { ::modal::__private::no_such_method(#class_name, &__method) }),
                    }
                }

                #[allow(unused_variables)]
                fn __call_batch(
                    __cell: ::std::sync::Arc<::modal::__private::ClassCell<Self>>,
                    __method: ::std::string::String,
                    __inputs: ::std::vec::Vec<::modal::__private::Bytes>,
                ) -> ::modal::__private::BatchFuture {
                    match __method.as_str() {
                        #batch_call
                        _ => ::std::boxed::Box::pin(async move {
                            __inputs.iter().map(|_| ::modal::__private::no_such_method(#class_name, &__method)).collect()
                        }),
                    }
                }
            }

            #[allow(dead_code)]
            impl #cls_ty {
                #(#handles)*
            }
        };
    }
}
