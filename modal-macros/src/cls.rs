//! `#[modal::cls(app = APP, ...)]` on a struct: its `#[modal::parameter]` fields, its
//! registration as a class, and the caller's handle `{Name}Cls` (parameter setters, options;
//! `#[modal::methods]` adds one handle method per class method).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Expr, Fields, Ident, ItemStruct, Type};

use crate::attr::{self, ParamValue};
use crate::ctxt::Ctxt;
use crate::modifiers;
use crate::param_table::Target;
use crate::params;

struct Parameter {
    ident: Ident,
    ty: Type,
    default: Option<Expr>,
}

pub(crate) fn expand(attr_tokens: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let Ok(mut s) = syn::parse2::<ItemStruct>(item.clone()) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[modal::cls] goes on a struct with named fields",
        ));
    };
    let mods = modifiers::take(&mut cx, &mut s.attrs, false);
    let parsed = params::parse_attr(&mut cx, attr_tokens, Target::Cls);
    if !s.generics.params.is_empty() {
        cx.error_spanned_by(&s.generics, "a #[modal::cls] cannot be generic");
    }
    let mut parameters = Vec::new();
    match &mut s.fields {
        Fields::Named(named) => {
            for field in &mut named.named {
                let mut keep = Vec::new();
                for a in field.attrs.drain(..) {
                    if !crate::modifiers::is(&a, "parameter") {
                        keep.push(a);
                        continue;
                    }
                    let default = match &a.meta {
                        syn::Meta::Path(_) => None,
                        syn::Meta::List(l) => match attr::parse_params(l.tokens.clone()) {
                            Ok(ps) => {
                                let ps = attr::check_keys(
                                    &mut cx,
                                    ps,
                                    "#[modal::parameter]",
                                    &["default"],
                                    |_| None,
                                );
                                ps.into_iter().find_map(|p| match p.value {
                                    ParamValue::Expr(e) => Some(e),
                                    _ => {
                                        cx.error_spanned_by(
                                            &p.key,
                                            "`default` takes a value: `default = …`",
                                        );
                                        None
                                    }
                                })
                            }
                            Err(e) => {
                                cx.push(e);
                                None
                            }
                        },
                        syn::Meta::NameValue(nv) => {
                            cx.error_spanned_by(nv, "write `#[modal::parameter(default = …)]`");
                            None
                        }
                    };
                    if let Some(ident) = &field.ident {
                        parameters.push(Parameter {
                            ident: ident.clone(),
                            ty: field.ty.clone(),
                            default,
                        });
                    }
                }
                field.attrs = keep;
            }
        }
        other => cx.error_spanned_by(
            &*other,
            "a #[modal::cls] needs named fields (`struct Model { … }`)",
        ),
    }
    cx.check()?;
    let Some(attr) = parsed else { return Ok(item) };
    let ident = &s.ident;
    let vis = &s.vis;
    let cls_ty = format_ident!("{}Cls", ident);
    let tag = ident.to_string();
    let app = &attr.app;
    let assignments = &attr.assignments;
    let modifier_assignments = mods.assignments();
    let field_idents: Vec<&Ident> = match &s.fields {
        Fields::Named(n) => n.named.iter().filter_map(|f| f.ident.as_ref()).collect(),
        _ => Vec::new(),
    };
    let p_idents: Vec<&Ident> = parameters.iter().map(|p| &p.ident).collect();
    let p_types: Vec<&Type> = parameters.iter().map(|p| &p.ty).collect();
    let builds = field_idents.iter().map(|f| {
        if p_idents.contains(f) {
            quote!(#f: __params.#f)
        } else {
            quote!(#f: ::core::default::Default::default())
        }
    });
    let initial = parameters.iter().map(|p| {
        let (i, t) = (&p.ident, &p.ty);
        match &p.default {
            // A number literal takes the field's type (`default = 0` for a `u64`).
            Some(d) if is_number_literal(d) => quote!(#i: ::core::option::Option::Some::<#t>(#d)),
            Some(d) => quote!(#i: ::core::option::Option::Some(::core::convert::Into::into(#d))),
            None => quote!(#i: ::core::option::Option::None),
        }
    });
    let setters = parameters.iter().map(|p| {
        let (i, t) = (&p.ident, &p.ty);
        let doc = format!("Sets the class parameter `{i}`.");
        // A number or `bool` is taken as is (so that `.salt(1)` is a `u64` for a `u64` field);
        // anything else converts (`.size("large")` for a `String`).
        let value = if is_primitive(t) {
            quote!(value: #t)
        } else {
            quote!(value: impl ::core::convert::Into<#t>)
        };
        quote!(
            #[doc = #doc]
            pub fn #i(mut self, #value) -> Self {
                self.#i = ::core::option::Option::Some(::core::convert::Into::into(value));
                self.__bound = ::core::default::Default::default();
                self
            }
        )
    });
    let core = if parameters.is_empty() {
        quote!(self.__core.clone())
    } else {
        let missing = parameters.iter().map(|p| {
            let i = &p.ident;
            let msg = format!("class `{tag}` needs its parameter `{i}`: set it with `.{i}(…)`");
            quote!(if self.#i.is_none() { return self.__core.with_params(&(), ::core::option::Option::Some(#msg.to_owned())); })
        });
        quote!({
            #(#missing)*
            match (#(self.#p_idents.clone(),)*) {
                (#(::core::option::Option::Some(#p_idents),)*) => {
                    self.__core.with_params(&__Params { #(#p_idents),* }, ::core::option::Option::None)
                }
                _ => self.__core.clone(),
            }
        })
    };

    Ok(quote! {
        #s

        /// The caller's handle to the class: parameter values and options, then its methods.
        #[derive(Clone)]
        #vis struct #cls_ty {
            __core: ::modal::__private::ClsCore,
            __bound: ::std::sync::Arc<::std::sync::OnceLock<::modal::__private::ClsCore>>,
            #(#p_idents: ::core::option::Option<#p_types>,)*
        }

        const _: () = {
            #[derive(::modal::__private::serde::Serialize, ::modal::__private::serde::Deserialize)]
            #[serde(crate = "::modal::__private::serde")]
            struct __Params {
                #(#p_idents: #p_types,)*
            }

            impl ::modal::__private::ClassParams for #ident {
                type Params = __Params;
                fn __from_params(__params: __Params) -> Self {
                    #ident { #(#builds,)* }
                }
            }

            fn __modal_spec() -> ::modal::__private::FunctionSpec {
                let mut spec = ::modal::__private::FunctionSpec::new(#tag);
                #(#assignments)*
                #modifier_assignments
                spec.is_class = true;
                spec.methods = <#ident as ::modal::__private::ClassMethods>::METHODS.iter().map(|m| (*m).to_owned()).collect();
                spec.generator_methods = <#ident as ::modal::__private::ClassMethods>::GENERATORS.iter().map(|m| (*m).to_owned()).collect();
                if let ::core::option::Option::Some(__b) = <#ident as ::modal::__private::ClassMethods>::BATCHED {
                    spec.batch = ::core::option::Option::Some(__b);
                }
                spec
            }

            static __MODAL_REGISTRATION: ::modal::__private::FunctionRegistration =
                ::modal::__private::FunctionRegistration {
                    app: || &*#app,
                    tag: #tag,
                    implementation: ::core::concat!(::core::module_path!(), "::", #tag),
                    types: || ("()", #tag),
                    spec: __modal_spec,
                    invoker: ::modal::__private::Invoker::Class(::modal::__private::new_class::<#ident>),
                    describe_result: || ::core::option::Option::None,
                    bound: ::modal::__private::BoundSlot::new(),
                };
            ::modal::__private::inventory::submit! {
                ::modal::__private::FunctionEntry(&__MODAL_REGISTRATION)
            }

            impl #ident {
                /// The caller's handle to this class (default parameter values, the class's options).
                #vis fn cls() -> #cls_ty {
                    #cls_ty::__over(::modal::__private::ClsCore::registered(&__MODAL_REGISTRATION))
                }
            }

            #[allow(dead_code)]
            impl #cls_ty {
                fn __over(core: ::modal::__private::ClsCore) -> Self {
                    #cls_ty { __core: core, __bound: ::core::default::Default::default(), #(#initial,)* }
                }

                /// The class of the deployed app `app_name`.
                pub fn from_name(app_name: &str) -> Self {
                    Self::__over(::modal::__private::ClsCore::named(app_name, #tag, ""))
                }

                #(#setters)*

                /// A variant with other options: its own pool of containers.
                pub fn with_options(mut self, options: ::modal::Options) -> Self {
                    self.__core = self.__core.with_options(options);
                    self.__bound = ::core::default::Default::default();
                    self
                }

                /// A variant whose containers run up to `max_inputs` inputs at once.
                pub fn with_concurrency(self, max_inputs: u32, target_inputs: ::core::option::Option<u32>) -> Self {
                    self.with_options(::modal::Options::new().concurrency(max_inputs, target_inputs))
                }

                /// A variant whose batched method gets batches of up to `max_batch_size` inputs.
                pub fn with_batching(self, max_batch_size: u32, wait_ms: u32) -> Self {
                    self.with_options(::modal::Options::new().batching(max_batch_size, wait_ms))
                }

                #[doc(hidden)]
                pub fn __core(&self) -> &::modal::__private::ClsCore {
                    self.__bound.get_or_init(|| #core)
                }
            }
        };
    })
}

/// Whether `e` is a number literal without a suffix, possibly negated.
fn is_number_literal(e: &Expr) -> bool {
    match e {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) => i.suffix().is_empty(),
            syn::Lit::Float(f) => f.suffix().is_empty(),
            _ => false,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => is_number_literal(&u.expr),
        Expr::Group(g) => is_number_literal(&g.expr),
        _ => false,
    }
}

/// Whether `t` names a primitive number type or `bool`.
fn is_primitive(t: &Type) -> bool {
    const PRIMITIVES: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool",
    ];
    match t {
        Type::Path(p) => {
            p.qself.is_none()
                && p.path
                    .get_ident()
                    .is_some_and(|i| PRIMITIVES.iter().any(|n| i == n))
        }
        _ => false,
    }
}
