//! The RFC 7047 pieces virt-vlan speaks, as typed values that turn into JSON: the operations
//! of a `transact` (select, update, mutate, wait, comment), conditions and mutations, the
//! OVSDB value encodings (`["set",[…]]`, `["map",[[k,v],…]]`, `["uuid",…]`,
//! `["named-uuid",…]`) and their parsing back, and the reading of a transaction's results.
//! Pure: no I/O.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A value or a result that is not what the RFC says it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected OVSDB value: {0}")]
pub struct DecodeError(pub String);

fn bad(what: &str, v: &Value) -> DecodeError {
    DecodeError(format!("expected {what}, got {v}"))
}

// ---- encodings -------------------------------------------------------------------------------

/// `["uuid", u]`: a reference to an existing row.
pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

/// `["named-uuid", n]`: a reference to a row inserted earlier in the same transaction.
pub fn named_uuid(n: &str) -> Value {
    json!(["named-uuid", n])
}

/// `["set", [...]]`; the empty set is how an optional column says "unset".
pub fn set<I: IntoIterator<Item = Value>>(items: I) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// The empty set.
pub fn empty() -> Value {
    set([])
}

/// An optional atom: the atom itself, or the empty set.
pub fn optional(v: Option<Value>) -> Value {
    v.unwrap_or_else(empty)
}

/// `["map", [[k, v], ...]]`.
pub fn map<I: IntoIterator<Item = (Value, Value)>>(pairs: I) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// A string→string map (`external_ids`, `other_config`).
pub fn string_map(m: &BTreeMap<String, String>) -> Value {
    map(m.iter().map(|(k, v)| (json!(k), json!(v))))
}

// ---- parsing ---------------------------------------------------------------------------------

/// The elements of a set column. A one-element set may arrive as the bare atom, which is
/// itself an array when it is a uuid (`["uuid", …]`).
pub fn parse_set(v: &Value) -> Result<Vec<Value>, DecodeError> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, items]) if tag == "set" => {
            items.as_array().cloned().ok_or_else(|| bad("a set", v))
        }
        Some([tag, _]) if tag == "map" => Err(bad("a set or an atom", v)),
        Some([tag, _]) if tag == "uuid" || tag == "named-uuid" => Ok(vec![v.clone()]),
        Some(_) => Err(bad("a set or an atom", v)),
        None => Ok(vec![v.clone()]),
    }
}

/// The pairs of a map column, in the order sent.
pub fn parse_map(v: &Value) -> Result<Vec<(Value, Value)>, DecodeError> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, pairs]) if tag == "map" => pairs
            .as_array()
            .ok_or_else(|| bad("a map", v))?
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([k, val]) => Ok((k.clone(), val.clone())),
                _ => Err(bad("a [key, value] pair", p)),
            })
            .collect(),
        _ => Err(bad("a map", v)),
    }
}

/// A string→string map column.
pub fn parse_string_map(v: &Value) -> Result<BTreeMap<String, String>, DecodeError> {
    parse_map(v)?
        .into_iter()
        .map(|(k, val)| match (k.as_str(), val.as_str()) {
            (Some(k), Some(val)) => Ok((k.to_string(), val.to_string())),
            _ => Err(bad("string keys and values", v)),
        })
        .collect()
}

/// A uuid atom, `["uuid", u]`.
pub fn parse_uuid(v: &Value) -> Result<String, DecodeError> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Ok(u.clone()),
        _ => Err(bad("a uuid", v)),
    }
}

/// A set of uuids (a reference column such as `Bridge.ports`).
pub fn parse_uuid_set(v: &Value) -> Result<Vec<String>, DecodeError> {
    parse_set(v)?.iter().map(parse_uuid).collect()
}

/// A set of integers (`Port.trunks`).
pub fn parse_integer_set(v: &Value) -> Result<Vec<i64>, DecodeError> {
    parse_set(v)?
        .iter()
        .map(|x| x.as_i64().ok_or_else(|| bad("an integer", x)))
        .collect()
}

/// An optional column (`min 0, max 1`): the empty set is `None`.
pub fn parse_optional(v: &Value) -> Result<Option<Value>, DecodeError> {
    let mut items = parse_set(v)?;
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        _ => Err(bad("at most one value", v)),
    }
}

/// An optional integer column (`Port.tag`).
pub fn parse_optional_integer(v: &Value) -> Result<Option<i64>, DecodeError> {
    parse_optional(v)?
        .map(|x| x.as_i64().ok_or_else(|| bad("an integer", &x)))
        .transpose()
}

/// An optional string column (`Port.vlan_mode`).
pub fn parse_optional_string(v: &Value) -> Result<Option<String>, DecodeError> {
    parse_optional(v)?
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad("a string", &x))
        })
        .transpose()
}

// ---- operations ------------------------------------------------------------------------------

/// A condition of a `where` clause: `[column, function, value]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub column: String,
    pub function: &'static str,
    pub value: Value,
}

impl Condition {
    /// `column == value`.
    pub fn eq(column: &str, value: Value) -> Self {
        Condition {
            column: column.to_string(),
            function: "==",
            value,
        }
    }

    /// The row whose `_uuid` is `u`.
    pub fn uuid_is(u: &str) -> Self {
        Self::eq("_uuid", uuid(u))
    }

    fn to_json(&self) -> Value {
        json!([self.column, self.function, self.value])
    }
}

/// A mutation: `[column, mutator, value]` (`+=`, `-=`, `insert`, `delete`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    pub column: String,
    pub mutator: &'static str,
    pub value: Value,
}

impl Mutation {
    pub fn add(column: &str, n: i64) -> Self {
        Mutation {
            column: column.to_string(),
            mutator: "+=",
            value: json!(n),
        }
    }

    fn to_json(&self) -> Value {
        json!([self.column, self.mutator, self.value])
    }
}

/// A row's columns, by name, in OVSDB encoding.
pub type Row = Map<String, Value>;

/// One operation of a `transact`.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The rows matching `conditions`; only `columns` when given.
    Select {
        table: String,
        conditions: Vec<Condition>,
        columns: Option<Vec<String>>,
    },
    /// Sets `row`'s columns in every row matching `conditions`.
    Update {
        table: String,
        conditions: Vec<Condition>,
        row: Row,
    },
    Mutate {
        table: String,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    },
    /// Fails the transaction (`"timed out"`) unless the rows matching `conditions`, projected
    /// on `columns`, are exactly `rows` — checked now (`timeout 0`, `until "=="`).
    Wait {
        table: String,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        rows: Vec<Row>,
    },
    /// Written to the database log with the transaction.
    Comment(String),
}

impl Op {
    pub fn select(table: &str, conditions: Vec<Condition>, columns: &[&str]) -> Self {
        Op::Select {
            table: table.to_string(),
            conditions,
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
        }
    }

    pub fn update(table: &str, conditions: Vec<Condition>, row: Row) -> Self {
        Op::Update {
            table: table.to_string(),
            conditions,
            row,
        }
    }

    pub fn mutate(table: &str, conditions: Vec<Condition>, mutations: Vec<Mutation>) -> Self {
        Op::Mutate {
            table: table.to_string(),
            conditions,
            mutations,
        }
    }

    /// A `wait` that the rows matching `conditions` still hold `rows` in `columns`.
    pub fn wait_unchanged(
        table: &str,
        conditions: Vec<Condition>,
        columns: &[&str],
        rows: Vec<Row>,
    ) -> Self {
        Op::Wait {
            table: table.to_string(),
            conditions,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    pub fn comment(text: &str) -> Self {
        Op::Comment(text.to_string())
    }

    /// The operation's JSON object.
    pub fn to_json(&self) -> Value {
        let wh = |c: &[Condition]| Value::Array(c.iter().map(Condition::to_json).collect());
        match self {
            Op::Select {
                table,
                conditions,
                columns,
            } => {
                let mut o = json!({"op": "select", "table": table, "where": wh(conditions)});
                if let Some(cols) = columns {
                    o["columns"] = json!(cols);
                }
                o
            }
            Op::Update {
                table,
                conditions,
                row,
            } => json!({"op": "update", "table": table, "where": wh(conditions), "row": row}),
            Op::Mutate {
                table,
                conditions,
                mutations,
            } => json!({
                "op": "mutate", "table": table, "where": wh(conditions),
                "mutations": mutations.iter().map(Mutation::to_json).collect::<Vec<_>>(),
            }),
            Op::Wait {
                table,
                conditions,
                columns,
                rows,
            } => json!({
                "op": "wait", "timeout": 0, "table": table, "where": wh(conditions),
                "columns": columns, "until": "==", "rows": rows,
            }),
            Op::Comment(text) => json!({"op": "comment", "comment": text}),
        }
    }
}

/// The `params` of a `transact` request on database `db`.
pub fn transact_params(db: &str, ops: &[Op]) -> Value {
    let mut params = vec![json!(db)];
    params.extend(ops.iter().map(Op::to_json));
    Value::Array(params)
}

/// Why a transaction did not commit, as its result array says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpFailure {
    /// The failing operation's index; `None` when every operation succeeded but the commit
    /// failed (a constraint, a referential integrity check).
    pub index: Option<usize>,
    /// The RFC's error string: `"timed out"` for a failed `wait`, `"constraint violation"`, …
    pub error: String,
    pub details: Option<String>,
}

/// Reads a `transact` result for `ops` operations: each operation's result, or the first
/// failure. The RFC puts an `{"error": …}` object at the failing operation's place (the
/// following places are `null` or absent), or one extra element for a failed commit.
pub fn op_results(
    result: &Value,
    ops: usize,
) -> Result<Result<Vec<Value>, OpFailure>, DecodeError> {
    let items = result
        .as_array()
        .ok_or_else(|| bad("a transaction result array", result))?;
    for (i, item) in items.iter().enumerate() {
        if let Some(error) = item.get("error").filter(|e| !e.is_null()) {
            return Ok(Err(OpFailure {
                index: (i < ops).then_some(i),
                error: error.as_str().unwrap_or("unknown error").to_string(),
                details: item
                    .get("details")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }));
        }
    }
    if items.len() < ops {
        return Err(bad(&format!("{ops} operation results"), result));
    }
    Ok(Ok(items[..ops].to_vec()))
}

/// The `rows` of a `select` result.
pub fn select_rows(result: &Value) -> Result<Vec<Row>, DecodeError> {
    result
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("a select result", result))?
        .iter()
        .map(|r| r.as_object().cloned().ok_or_else(|| bad("a row", r)))
        .collect()
}

/// The `count` of an `update` or `mutate` result.
pub fn row_count(result: &Value) -> Result<u64, DecodeError> {
    result
        .get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("an update or mutate result", result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(uuid("u1"), json!(["uuid", "u1"]));
        assert_eq!(named_uuid("new"), json!(["named-uuid", "new"]));
        assert_eq!(set([json!(1), json!(2)]), json!(["set", [1, 2]]));
        assert_eq!(empty(), json!(["set", []]));
        assert_eq!(optional(Some(json!(4))), json!(4));
        assert_eq!(optional(None), json!(["set", []]));
        let m = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        assert_eq!(string_map(&m), json!(["map", [["a", "1"], ["b", "2"]]]));
        assert_eq!(string_map(&BTreeMap::new()), json!(["map", []]));
    }

    #[test]
    fn parsing_accepts_bare_atoms_for_one_element_sets() {
        assert_eq!(
            parse_integer_set(&json!(["set", [10, 20]])).unwrap(),
            vec![10, 20]
        );
        assert_eq!(parse_integer_set(&json!(10)).unwrap(), vec![10]);
        assert_eq!(
            parse_integer_set(&json!(["set", []])).unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(
            parse_uuid_set(&json!(["uuid", "a"])).unwrap(),
            vec!["a".to_string()]
        );
        assert_eq!(
            parse_uuid_set(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(parse_optional_integer(&json!(1234)).unwrap(), Some(1234));
        assert_eq!(parse_optional_integer(&json!(["set", []])).unwrap(), None);
        assert_eq!(
            parse_optional_string(&json!("native-tagged")).unwrap(),
            Some("native-tagged".into())
        );
        assert_eq!(parse_optional_string(&json!(["set", []])).unwrap(), None);
        let m = parse_string_map(&json!(["map", [["attached-mac", "52:54:00:00:00:01"]]])).unwrap();
        assert_eq!(m["attached-mac"], "52:54:00:00:00:01");
        assert_eq!(
            parse_map(&json!(["map", [[1, "x"]]])).unwrap(),
            vec![(json!(1), json!("x"))]
        );
    }

    #[test]
    fn parsing_refuses_the_wrong_shape() {
        assert!(parse_optional(&json!(["set", [1, 2]])).is_err());
        assert!(parse_set(&json!(["map", []])).is_err());
        assert!(parse_set(&json!([1, 2, 3])).is_err());
        assert!(parse_map(&json!(["set", []])).is_err());
        assert!(parse_string_map(&json!(["map", [["k", 1]]])).is_err());
        assert!(parse_uuid(&json!("abc")).is_err());
        assert!(parse_integer_set(&json!(["set", ["x"]])).is_err());
        let e = parse_optional_integer(&json!("x")).unwrap_err();
        assert!(e.to_string().contains("integer"), "{e}");
    }

    #[test]
    fn operations_as_the_rfc_spells_them() {
        let sel = Op::select("Port", vec![], &["name", "tag"]);
        assert_eq!(
            sel.to_json(),
            json!({"op": "select", "table": "Port", "where": [], "columns": ["name", "tag"]})
        );
        let mut row = Row::new();
        row.insert("tag".into(), json!(4));
        let upd = Op::update("Port", vec![Condition::uuid_is("u1")], row.clone());
        assert_eq!(
            upd.to_json(),
            json!({"op": "update", "table": "Port",
                   "where": [["_uuid", "==", ["uuid", "u1"]]], "row": {"tag": 4}})
        );
        let m = Op::mutate("Open_vSwitch", vec![], vec![Mutation::add("next_cfg", 1)]);
        assert_eq!(
            m.to_json(),
            json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                   "mutations": [["next_cfg", "+=", 1]]})
        );
        let w = Op::wait_unchanged("Port", vec![Condition::uuid_is("u1")], &["tag"], vec![row]);
        assert_eq!(
            w.to_json(),
            json!({"op": "wait", "timeout": 0, "table": "Port",
                   "where": [["_uuid", "==", ["uuid", "u1"]]], "columns": ["tag"],
                   "until": "==", "rows": [{"tag": 4}]})
        );
        assert_eq!(
            Op::comment("virt-vlan").to_json(),
            json!({"op": "comment", "comment": "virt-vlan"})
        );
        let p = transact_params("Open_vSwitch", &[Op::comment("x")]);
        assert_eq!(
            p,
            json!(["Open_vSwitch", {"op": "comment", "comment": "x"}])
        );
    }

    #[test]
    fn results_name_the_failing_operation() {
        let ok = json!([{}, {"count": 1}, {"rows": [{"next_cfg": 7}]}]);
        let r = op_results(&ok, 3).unwrap().unwrap();
        assert_eq!(row_count(&r[1]).unwrap(), 1);
        assert_eq!(select_rows(&r[2]).unwrap()[0]["next_cfg"], json!(7));

        let failed_wait = json!([{"error": "timed out", "details": "\"wait\" timed out"}, null]);
        let f = op_results(&failed_wait, 2).unwrap().unwrap_err();
        assert_eq!(f.index, Some(0));
        assert_eq!(f.error, "timed out");
        assert_eq!(f.details.as_deref(), Some("\"wait\" timed out"));

        let failed_commit = json!([{}, {"error": "constraint violation", "details": "x"}]);
        let f = op_results(&failed_commit, 1).unwrap().unwrap_err();
        assert_eq!(f.index, None);
        assert_eq!(f.error, "constraint violation");

        assert!(op_results(&json!([{}]), 2).is_err());
        assert!(op_results(&json!({}), 1).is_err());
        assert!(select_rows(&json!({"count": 1})).is_err());
    }
}
