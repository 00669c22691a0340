//! Range checks of numeric settings, shared by the TOML recipes: each failure reads
//! `key = value: must be ...`, so the user sees the key, what they wrote and what would do.

use std::fmt::Display;

/// `value >= min`.
pub fn at_least<T: PartialOrd + Display>(key: &str, value: T, min: T) -> Result<(), String> {
    if value >= min {
        Ok(())
    } else {
        Err(format!("{key} = {value}: must be at least {min}"))
    }
}

/// `min <= value <= max`.
pub fn within<T: PartialOrd + Display>(key: &str, value: T, min: T, max: T) -> Result<(), String> {
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(format!("{key} = {value}: must be in {min}..={max}"))
    }
}

/// A finite number above 0 (rates, temperatures).
pub fn positive(key: &str, x: f64) -> Result<(), String> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x}: must be a finite number > 0"))
    }
}

/// A finite number of at least 0 (penalties, clip ranges, norms where 0 turns a feature off).
pub fn non_negative(key: &str, x: f64) -> Result<(), String> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x}: must be a finite number >= 0"))
    }
}

/// A decay rate such as Adam's betas: in [0, 1).
pub fn below_one(key: &str, x: f64) -> Result<(), String> {
    non_negative(key, x)?;
    if x < 1.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x}: must be below 1"))
    }
}

/// A probability mass such as top-p: in (0, 1].
pub fn fraction(key: &str, x: f64) -> Result<(), String> {
    if x > 0.0 && x <= 1.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x}: must be in (0, 1]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_the_value_and_the_range() {
        assert_eq!(at_least("grpo.iterations", 0usize, 1).unwrap_err(), "grpo.iterations = 0: must be at least 1");
        assert_eq!(positive("grpo.temperature", f64::NAN).unwrap_err(), "grpo.temperature = NaN: must be a finite number > 0");
        assert_eq!(positive("grpo.lr", f64::INFINITY).unwrap_err(), "grpo.lr = inf: must be a finite number > 0");
        assert_eq!(non_negative("grpo.epsilon_low", -1.0).unwrap_err(), "grpo.epsilon_low = -1: must be a finite number >= 0");
        assert_eq!(fraction("grpo.top_p", 2.0).unwrap_err(), "grpo.top_p = 2: must be in (0, 1]");
        assert_eq!(within("data.max_operand", 0i64, 1, 9).unwrap_err(), "data.max_operand = 0: must be in 1..=9");
    }

    #[test]
    fn edges_of_each_range_pass() {
        at_least("k", 1usize, 1).unwrap();
        within("k", 9i64, 1, 9).unwrap();
        positive("k", f64::MIN_POSITIVE).unwrap();
        non_negative("k", 0.0).unwrap();
        fraction("k", 1.0).unwrap();
        assert!(fraction("k", 0.0).is_err() && fraction("k", f64::NAN).is_err());
    }
}
