//! Reading a function signature: owned, named arguments and the shape of the return type, with
//! an error for every construct a remote function cannot have.

use syn::visit::Visit;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::ctxt::Ctxt;

#[derive(Clone)]
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Declared `mut x: T`.
    pub(crate) mutable: bool,
}

pub(crate) enum Return {
    /// `()` or nothing.
    Unit,
    /// Any other type.
    Plain(Type),
    /// `Result<T, E>` or an alias with one argument (`anyhow::Result<T>`): errors are the user's.
    Result { ok: Type },
    /// `impl Iterator<Item = T>` or `impl Stream<Item = T>`: a generator of `T`.
    Generator { item: Type, stream: bool },
}

impl Return {
    /// The type a caller receives on success.
    pub(crate) fn value_type(&self) -> Type {
        match self {
            Return::Unit => syn::parse_quote!(()),
            Return::Plain(t) | Return::Result { ok: t } | Return::Generator { item: t, .. } => {
                t.clone()
            }
        }
    }
}

pub(crate) struct Signature {
    pub(crate) args: Vec<Arg>,
    pub(crate) ret: Return,
    pub(crate) is_async: bool,
}

struct Borrowed<'a> {
    found: Option<&'a dyn quote::ToTokens>,
}

impl<'a> Visit<'a> for Borrowed<'a> {
    fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
        self.found.get_or_insert(r);
    }
    fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
        self.found.get_or_insert(l);
    }
    fn visit_type_impl_trait(&mut self, t: &'a syn::TypeImplTrait) {
        self.found.get_or_insert(t);
    }
}

fn borrowed(ty: &Type) -> Option<&dyn quote::ToTokens> {
    let mut v = Borrowed { found: None };
    v.visit_type(ty);
    v.found
}

/// Checks what every annotated function must satisfy; `what` names the attribute in messages.
pub(crate) fn analyze(cx: &mut Ctxt, f: &ItemFn, what: &str) -> Signature {
    let sig = &f.sig;
    if let Some(c) = &sig.constness {
        cx.error_spanned_by(c, format!("{what} cannot be a `const fn`"));
    }
    if let Some(u) = &sig.unsafety {
        cx.error_spanned_by(u, format!("{what} cannot be an `unsafe fn`"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, format!("{what} cannot have an `extern` ABI"));
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, format!("{what} cannot be variadic"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &sig.generics,
            format!("{what} cannot be generic: its argument and return types must be concrete, so that the container can decode them"),
        );
    }
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                cx.error_spanned_by(r, format!("{what} must be a free function, not a method"))
            }
            FnArg::Typed(pt) => {
                let (ident, mutable) = match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        (pi.ident.clone(), pi.mutability.is_some())
                    }
                    other => {
                        cx.error_spanned_by(
                            other,
                            "arguments must be plain names (`x: T`), not patterns",
                        );
                        continue;
                    }
                };
                if let Some(tokens) = borrowed(&pt.ty) {
                    cx.error_spanned_by(
                        tokens,
                        "arguments must be owned types that serde can send between processes (for example `String` instead of `&str`)",
                    );
                    continue;
                }
                args.push(Arg {
                    ident,
                    ty: (*pt.ty).clone(),
                    mutable,
                });
            }
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => Return::Unit,
        ReturnType::Type(_, ty) if generator_item(ty).is_some() => {
            let (item, stream) = generator_item(ty).unwrap_or_else(|| ((**ty).clone(), false));
            if let Some(tokens) = borrowed(&item) {
                cx.error_spanned_by(
                    tokens,
                    "a generator's items must be owned (no references or lifetimes)",
                );
            }
            Return::Generator { item, stream }
        }
        ReturnType::Type(_, ty) => {
            if let Some(tokens) = borrowed(ty) {
                cx.error_spanned_by(
                    tokens,
                    "the return type must be owned (no references, lifetimes or `impl Trait`)",
                );
            }
            classify_return(ty)
        }
    };
    Signature {
        args,
        ret,
        is_async: sig.asyncness.is_some(),
    }
}

/// The shape of a return type: a generator, a `Result`, `()`, or a plain value.
pub(crate) fn classify(ty: &Type) -> Return {
    match generator_item(ty) {
        Some((item, stream)) => Return::Generator { item, stream },
        None => classify_return(ty),
    }
}

fn classify_return(ty: &Type) -> Return {
    if let Type::Tuple(t) = ty
        && t.elems.is_empty()
    {
        return Return::Unit;
    }
    if let Type::Path(p) = ty
        && p.qself.is_none()
        && let Some(last) = p.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &last.arguments
    {
        let types: Vec<&Type> = args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect();
        if let Some(ok) = types.first()
            && types.len() <= 2
        {
            return Return::Result { ok: (*ok).clone() };
        }
    }
    Return::Plain(ty.clone())
}

/// `impl Iterator<Item = T>` (false) or `impl Stream<Item = T>` (true): the item type.
pub(crate) fn generator_item(ty: &Type) -> Option<(Type, bool)> {
    let Type::ImplTrait(it) = ty else { return None };
    for bound in &it.bounds {
        let syn::TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let last = t.path.segments.last()?;
        let stream = match last.ident.to_string().as_str() {
            "Iterator" => false,
            "Stream" => true,
            _ => continue,
        };
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            continue;
        };
        for a in &args.args {
            if let GenericArgument::AssocType(assoc) = a
                && assoc.ident == "Item"
            {
                return Some((assoc.ty.clone(), stream));
            }
        }
    }
    None
}
