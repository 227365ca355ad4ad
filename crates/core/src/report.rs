//! The one renderer of error chains. Every error type in certkeeper keeps its cause as
//! `source()` and leaves it out of its own message, so printing the chain joined by `": "`
//! (what anyhow's `{:#}` does) names each cause exactly once. Logs, state records, command
//! output and the daemon's control replies all render errors through [`error_chain`].

use std::error::Error;

/// `err` and its sources, `outer: cause: root cause`.
#[must_use]
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|inner| inner as &(dyn Error + 'static))
        }
    }

    #[test]
    fn each_cause_once_outer_first() {
        let err = Layer(
            "installing the certificate",
            Some(Box::new(Layer(
                "cannot write state/www.json",
                Some(Box::new(Layer("No space left on device", None))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "installing the certificate: cannot write state/www.json: No space left on device"
        );
    }
}
