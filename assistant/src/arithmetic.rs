//! The calculator tool: arithmetic a household asks for ("what is 15% of
//! 80", "(3.20 + 4.75) * 3 / 4"), evaluated exactly as written instead of
//! guessed by a small model. Numbers are decimals; `+ - * / ^`, `×` and
//! `÷`, parentheses, `mod`, a percent sign (`15%` is 0.15), `of` as
//! multiplication after a percentage, and `sqrt`, `abs`, `round`, `floor`,
//! `ceil`. Bounded: at most [`MAX_EXPRESSION`] characters and
//! [`MAX_DEPTH`] levels of nesting, so any input is answered quickly.

/// Longest expression evaluated.
pub const MAX_EXPRESSION: usize = 256;
/// Deepest nesting of parentheses, signs and powers.
pub const MAX_DEPTH: usize = 32;

/// Why an expression has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArithmeticError {
    /// Longer than [`MAX_EXPRESSION`].
    #[error("the expression is longer than {MAX_EXPRESSION} characters")]
    TooLong,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("the expression is nested too deeply")]
    TooDeep,
    /// Something that is not arithmetic.
    #[error("cannot read the expression at `{0}`")]
    Unexpected(String),
    /// It ended too soon.
    #[error("the expression ends too soon")]
    Incomplete,
    /// Division by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Too large, or not a number (the square root of a negative).
    #[error("the result is not a finite number")]
    NotFinite,
}

/// The value of `expression`.
pub fn evaluate(expression: &str) -> Result<f64, ArithmeticError> {
    if expression.chars().count() > MAX_EXPRESSION {
        return Err(ArithmeticError::TooLong);
    }
    let tokens = tokens(expression)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    if let Some(token) = tokens.get(parser.at) {
        return Err(ArithmeticError::Unexpected(token.to_string()));
    }
    finite(value)
}

/// `value` for people: at most ten significant digits, no trailing zeros.
pub fn format(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if value.abs() >= 1e15 || value.abs() < 1e-9 {
        return format!("{value:e}");
    }
    let digits = 10 - (value.abs().log10().floor() as i32 + 1);
    let decimals = usize::try_from(digits.clamp(0, 12)).expect("clamped to 0-12");
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn finite(value: f64) -> Result<f64, ArithmeticError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ArithmeticError::NotFinite)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Operator(char),
    Open,
    Close,
    Word(String),
}

impl std::fmt::Display for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Number(number) => write!(formatter, "{number}"),
            Token::Operator(operator) => write!(formatter, "{operator}"),
            Token::Open => formatter.write_str("("),
            Token::Close => formatter.write_str(")"),
            Token::Word(word) => formatter.write_str(word),
        }
    }
}

fn tokens(expression: &str) -> Result<Vec<Token>, ArithmeticError> {
    let mut tokens = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '0'..='9' | '.' => {
                let mut end = start + c.len_utf8();
                while let Some(&(index, next)) = chars.peek() {
                    // Thousands separators: "1,234.50".
                    let separator = next == ','
                        && expression[index + 1..]
                            .chars()
                            .take(4)
                            .filter(char::is_ascii_digit)
                            .count()
                            == 3
                        && !expression[index + 1..]
                            .chars()
                            .nth(3)
                            .is_some_and(|after| after.is_ascii_digit());
                    if next.is_ascii_digit() || next == '.' || separator {
                        end = index + next.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let text: String = expression[start..end]
                    .chars()
                    .filter(|c| *c != ',')
                    .collect();
                let number = text
                    .parse()
                    .map_err(|_| ArithmeticError::Unexpected(text.clone()))?;
                tokens.push(Token::Number(number));
            }
            '+' | '-' | '*' | '/' | '^' | '%' => tokens.push(Token::Operator(c)),
            '×' | 'x' if matches!(tokens.last(), Some(Token::Number(_) | Token::Close)) => {
                tokens.push(Token::Operator('*'));
            }
            '×' => tokens.push(Token::Operator('*')),
            '÷' => tokens.push(Token::Operator('/')),
            '−' => tokens.push(Token::Operator('-')),
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            c if c.is_alphabetic() => {
                let mut end = start + c.len_utf8();
                while let Some(&(index, next)) = chars.peek() {
                    if next.is_alphabetic() {
                        end = index + next.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(expression[start..end].to_lowercase()));
            }
            other => return Err(ArithmeticError::Unexpected(other.to_string())),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn deeper(&mut self) -> Result<(), ArithmeticError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ArithmeticError::TooDeep);
        }
        Ok(())
    }

    fn sum(&mut self) -> Result<f64, ArithmeticError> {
        let mut value = self.product()?;
        while let Some(Token::Operator(operator @ ('+' | '-'))) = self.peek() {
            let operator = *operator;
            self.at += 1;
            let right = self.product()?;
            value = finite(if operator == '+' {
                value + right
            } else {
                value - right
            })?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, ArithmeticError> {
        let mut value = self.unary()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Operator(operator @ ('*' | '/'))) => *operator,
                Some(Token::Word(word)) if word == "mod" => 'm',
                Some(Token::Word(word)) if word == "of" => '*',
                Some(Token::Word(word)) if word == "times" => '*',
                _ => return Ok(value),
            };
            self.at += 1;
            let right = self.unary()?;
            value = match operator {
                '*' => value * right,
                '/' if right == 0.0 => return Err(ArithmeticError::DivisionByZero),
                '/' => value / right,
                _ if right == 0.0 => return Err(ArithmeticError::DivisionByZero),
                _ => value.rem_euclid(right),
            };
            value = finite(value)?;
        }
    }

    /// A signed operand: signs bind looser than powers (`-2^2` is -4).
    fn unary(&mut self) -> Result<f64, ArithmeticError> {
        match self.peek() {
            Some(Token::Operator(sign @ ('-' | '+'))) => {
                let negative = *sign == '-';
                self.at += 1;
                self.deeper()?;
                let value = self.unary()?;
                self.depth -= 1;
                Ok(if negative { -value } else { value })
            }
            _ => self.power(),
        }
    }

    /// `base ^ exponent`, grouping to the right; the exponent may be signed.
    fn power(&mut self) -> Result<f64, ArithmeticError> {
        let base = self.percent()?;
        if let Some(Token::Operator('^')) = self.peek() {
            self.at += 1;
            self.deeper()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            return finite(base.powf(exponent));
        }
        Ok(base)
    }

    /// An operand and its percent signs.
    fn percent(&mut self) -> Result<f64, ArithmeticError> {
        let mut value = self.primary()?;
        while let Some(Token::Operator('%')) = self.peek() {
            self.at += 1;
            value /= 100.0;
        }
        Ok(value)
    }

    fn primary(&mut self) -> Result<f64, ArithmeticError> {
        let token = self.peek().cloned().ok_or(ArithmeticError::Incomplete)?;
        self.at += 1;
        match token {
            Token::Number(number) => Ok(number),
            Token::Open => self.group(),
            Token::Word(word) => {
                let function: fn(f64) -> f64 = match word.as_str() {
                    "sqrt" => f64::sqrt,
                    "abs" => f64::abs,
                    "round" => f64::round,
                    "floor" => f64::floor,
                    "ceil" => f64::ceil,
                    "pi" => return Ok(std::f64::consts::PI),
                    _ => return Err(ArithmeticError::Unexpected(word)),
                };
                match self.peek() {
                    Some(Token::Open) => {
                        self.at += 1;
                        finite(function(self.group()?))
                    }
                    Some(other) => Err(ArithmeticError::Unexpected(other.to_string())),
                    None => Err(ArithmeticError::Incomplete),
                }
            }
            other => Err(ArithmeticError::Unexpected(other.to_string())),
        }
    }

    /// After `(`: the expression and its `)`.
    fn group(&mut self) -> Result<f64, ArithmeticError> {
        self.deeper()?;
        let value = self.sum()?;
        self.depth -= 1;
        match self.peek() {
            Some(Token::Close) => {
                self.at += 1;
                Ok(value)
            }
            Some(other) => Err(ArithmeticError::Unexpected(other.to_string())),
            None => Err(ArithmeticError::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expression: &str) -> String {
        format(evaluate(expression).unwrap_or_else(|error| panic!("{expression}: {error}")))
    }

    #[test]
    fn household_sums_come_out_exactly() {
        assert_eq!(value("15% of 80"), "12");
        assert_eq!(value("(3.20 + 4.75) * 3 / 4"), "5.9625");
        assert_eq!(value("1,234.50 + 0.5"), "1235");
        assert_eq!(value("2^3^2"), "512", "powers group to the right");
        assert_eq!(value("-2^2"), "-4");
        assert_eq!(value("2^-1"), "0.5");
        assert_eq!(value("10 - -3"), "13");
        assert_eq!(value("17 mod 5"), "2");
        assert_eq!(value("3 × 4 ÷ 2"), "6");
        assert_eq!(value("3x4"), "12");
        assert_eq!(value("sqrt(16) + abs(-2)"), "6");
        assert_eq!(value("round(2.5) + floor(1.9) + ceil(1.1)"), "6");
        assert_eq!(value("0.1 + 0.2"), "0.3");
        assert_eq!(value("1/3"), "0.3333333333");
        assert_eq!(value("12 times 3"), "36");
    }

    #[test]
    fn bad_input_is_an_error_not_a_guess() {
        let error = |expression: &str| evaluate(expression).unwrap_err();
        assert_eq!(error("1/0"), ArithmeticError::DivisionByZero);
        assert_eq!(error("5 mod 0"), ArithmeticError::DivisionByZero);
        assert_eq!(error("sqrt(-1)"), ArithmeticError::NotFinite);
        assert_eq!(error("10^400"), ArithmeticError::NotFinite);
        assert_eq!(error("(1 + 2"), ArithmeticError::Incomplete);
        assert_eq!(error("1 +"), ArithmeticError::Incomplete);
        assert_eq!(error("2 2"), ArithmeticError::Unexpected("2".into()));
        assert_eq!(error("rm -rf /"), ArithmeticError::Unexpected("rm".into()));
        assert_eq!(error("1 ; 2"), ArithmeticError::Unexpected(";".into()));
        assert_eq!(error(&"(".repeat(40)), ArithmeticError::TooDeep);
        assert_eq!(error(&"-".repeat(40)), ArithmeticError::TooDeep);
        assert_eq!(error(&"1+".repeat(200)), ArithmeticError::TooLong);
        assert_eq!(error("1..2"), ArithmeticError::Unexpected("1..2".into()));
    }

    #[test]
    fn results_read_plainly() {
        assert_eq!(format(2.0), "2");
        assert_eq!(format(-0.5), "-0.5");
        assert_eq!(format(1e20), "1e20");
        assert_eq!(format(123_456_789.123), "123456789.1");
    }
}
