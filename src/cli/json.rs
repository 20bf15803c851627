//! What `--json` prints: every document is one JSON object whose first
//! field, `schema`, names what it is and its version
//! (`certmint.order.status/1`), so that a script can tell a document it
//! knows from a changed one. A list is an object holding the list.
//! docs/json.md describes each.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// The version of every schema certmint prints today.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a, T: ?Sized + Serialize> {
    schema: String,
    #[serde(flatten)]
    body: &'a T,
}

/// `certmint.{name}/1`.
pub fn schema(name: &str) -> String {
    format!("certmint.{name}/{VERSION}")
}

/// Prints `body` (an object) as the document `name`, indented.
pub fn print<T: ?Sized + Serialize>(name: &str, body: &T) -> Result<()> {
    let document = Document {
        schema: schema(name),
        body,
    };
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

/// Prints a list as the document `name`: `{"schema": …, field: [...]}`.
pub fn print_list<T: Serialize>(name: &str, field: &str, items: &[T]) -> Result<()> {
    let mut body = serde_json::Map::new();
    body.insert(field.to_owned(), serde_json::to_value(items)?);
    print(name, &body)
}

/// Writes `body` as one line of JSON lines, the document `name`.
pub fn write_line<W: Write, T: ?Sized + Serialize>(
    out: &mut W,
    name: &str,
    body: &T,
) -> std::io::Result<()> {
    let document = Document {
        schema: schema(name),
        body,
    };
    serde_json::to_writer(&mut *out, &document)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Example {
        order: i64,
        state: &'static str,
    }

    #[test]
    fn the_schema_comes_first_and_the_body_follows() {
        let mut out = Vec::new();
        write_line(
            &mut out,
            "order.status",
            &Example {
                order: 7,
                state: "paid",
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"schema\":\"certmint.order.status/1\",\"order\":7,\"state\":\"paid\"}\n"
        );
    }
}
