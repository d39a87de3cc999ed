//! The generated code that turns what user code returned into outcomes (shared by functions and
//! class methods): values, user errors through the serde/Display/Debug probes, generator items,
//! batch results.

use proc_macro2::TokenStream;
use quote::quote;

use crate::sig::Return;

/// The outcome of `__ret`, a value of the shape `ret`.
pub(crate) fn to_outcome(ret: &Return) -> TokenStream {
    match ret {
        Return::Unit => quote!({
            let () = __ret;
            ::modal::__private::encode_value(&())
        }),
        Return::Plain(_) | Return::Generator { .. } => {
            quote!(::modal::__private::encode_value(&__ret))
        }
        Return::Result { .. } => {
            let err = user_error(&quote!(__e));
            quote!(match __ret {
                ::core::result::Result::Ok(__v) => ::modal::__private::encode_value(&__v),
                ::core::result::Result::Err(__e) => #err,
            })
        }
    }
}

/// The outcome of the user's error value `e`: typed when it is serde, else its text.
pub(crate) fn user_error(e: &TokenStream) -> TokenStream {
    quote!({
        #[allow(unused_imports)]
        use ::modal::__private::{UserErrorViaDebug as _, UserErrorViaDisplay as _, UserErrorViaSerde as _};
        (&&&::modal::__private::ErrorProbe(&#e)).__modal_user_error()
    })
}

/// One outcome per input of a batch from `__ret` (`Vec<R>`, or `Result<Vec<R>, E>`), `__n` inputs.
pub(crate) fn batch_outcomes(fallible: bool) -> TokenStream {
    if fallible {
        let err = user_error(&quote!(__e));
        quote!(match __ret {
            ::core::result::Result::Ok(__v) => ::modal::__private::batch_values(__v),
            ::core::result::Result::Err(__e) => ::modal::__private::batch_failed(__n, &#err),
        })
    } else {
        quote!(::modal::__private::batch_values(__ret))
    }
}

/// Runs a generator call and sends its items to `__sink`.
pub(crate) fn drain(stream: bool, is_async: bool, call: &TokenStream) -> TokenStream {
    let call = if is_async {
        quote!(#call.await)
    } else {
        call.clone()
    };
    if stream {
        quote!(::modal::__private::drain_stream(#call, &__sink).await)
    } else {
        quote!({
            let __items = #call;
            match ::modal::__private::blocking(move || ::modal::__private::drain_iter(__items, &__sink)).await {
                ::core::result::Result::Ok(__o) | ::core::result::Result::Err(__o) => __o,
            }
        })
    }
}
