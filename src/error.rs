//! Error kinds that decide the exit code: bad input (arguments, config, XML, policy) exits 2,
//! everything else that goes wrong at run time exits 1.

use crate::config::ConfigError;

/// Input the user must fix: a config value, domain XML, an argument, a policy violation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Exit code for an error: 2 when any cause is bad input, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.chain()
        .any(|c| c.is::<BadInput>() || c.is::<ConfigError>())
    {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_exits_2() {
        let e = anyhow::Error::from(BadInput("x".into()));
        assert_eq!(exit_code(&e), 2);
        let e = Err::<(), _>(ConfigError("y".into()))
            .context("while loading")
            .unwrap_err();
        assert_eq!(exit_code(&e), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("kernel said no")), 1);
    }
}
