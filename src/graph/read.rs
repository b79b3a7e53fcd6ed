//! The judge's reader: a whole Neo4j database into the judge's [`Graph`].
//!
//! Neo4j renders every value itself (`valueType`, `toString`), so nothing is
//! decoded on this side and nothing a Bolt driver cannot carry (named zones,
//! negative sub-second durations, dates past 9999) can be lost in transit.
//! It reads everything; what is not user data is taken out later, by
//! [`super::Foreign::strip`], from stored evidence.

use std::collections::{BTreeMap, BTreeSet};

use neo4rs::{BoltType, query};

use super::{Graph, ID_PROPERTY, Inventory, Node, Props, Rel, Text, Value};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read {what} from Neo4j: {message}")]
    Neo4j { what: &'static str, message: String },
    #[error("read {what}: unexpected {field} in Neo4j's answer: {got}")]
    Shape {
        what: &'static str,
        field: &'static str,
        got: String,
    },
}

/// A property's value rendered by Neo4j: `[type, text]`, where text is a
/// list of element texts for a list (no property holds a nested list).
/// `valueType` calls a byte array a list of integers, so an integer list
/// also comes as it is, only for Bolt to tell bytes apart (the numbers are
/// taken from Neo4j's text, no driver decodes them; a byte's text is
/// Java's, signed: 255 is `-1`).
const RENDER: &str = "[k IN keys(e) WHERE k <> $id | [k, valueType(e[k]), \
     CASE WHEN valueType(e[k]) STARTS WITH 'LIST' THEN [x IN e[k] | toString(x)] \
     ELSE toString(e[k]) END, \
     CASE WHEN valueType(e[k]) = 'LIST<INTEGER NOT NULL> NOT NULL' THEN e[k] END]]";

/// The judge's type name for a byte array (Neo4j's `valueType` has none).
pub const BYTE_ARRAY: &str = "BYTE ARRAY";

/// Reads every node, relationship, index and constraint of `db`. An
/// entity without the harness id gets [`super::UNNAMED`] + its element id.
pub async fn read(db: &neo4rs::Graph) -> Result<Graph, ReadError> {
    let mut g = Graph::default();
    let nodes = format!(
        "MATCH (e) RETURN elementId(e) AS eid, toString(e[$id]) AS id, labels(e) AS labels, \
         {RENDER} AS props"
    );
    let mut rows = db
        .execute(query(&nodes).param("id", ID_PROPERTY))
        .await
        .map_err(neo("nodes"))?;
    while let Some(row) = rows.next().await.map_err(neo("nodes"))? {
        let eid: String = get(&row, "nodes", "eid")?;
        let id: Option<String> = get(&row, "nodes", "id")?;
        let labels: BTreeSet<String> = get(&row, "nodes", "labels")?;
        g.put_node(Node {
            id: id.unwrap_or_else(|| unnamed(&eid)),
            labels,
            props: props(&row, "nodes")?,
        });
    }
    let rels = format!(
        "MATCH (a)-[e]->(b) RETURN elementId(e) AS eid, toString(e[$id]) AS id, type(e) AS type, \
         elementId(a) AS a, elementId(b) AS b, toString(a[$id]) AS start, toString(b[$id]) AS end, \
         {RENDER} AS props"
    );
    let mut rows = db
        .execute(query(&rels).param("id", ID_PROPERTY))
        .await
        .map_err(neo("relationships"))?;
    while let Some(row) = rows.next().await.map_err(neo("relationships"))? {
        let what = "relationships";
        let (a, b): (String, String) = (get(&row, what, "a")?, get(&row, what, "b")?);
        let eid: String = get(&row, what, "eid")?;
        let or_eid = |id: Option<String>, eid: &str| id.unwrap_or_else(|| unnamed(eid));
        g.put_rel(Rel {
            id: or_eid(get(&row, what, "id")?, &eid),
            rel_type: get(&row, what, "type")?,
            start: or_eid(get(&row, what, "start")?, &a),
            end: or_eid(get(&row, what, "end")?, &b),
            props: props(&row, what)?,
        });
    }
    g.schema = schema(db).await?;
    Ok(g)
}

fn unnamed(eid: &str) -> String {
    format!("{}{eid}", super::UNNAMED)
}

/// Counts of what `db` holds, by label, relationship type and property key,
/// and of nodes without the harness id: cheap to read from a database of
/// any size, enough to say what an agent added to it.
pub async fn inventory(db: &neo4rs::Graph) -> Result<Inventory, ReadError> {
    let mut inv = Inventory {
        schema: schema(db).await?,
        ..Inventory::default()
    };
    let mut rel_props = BTreeMap::new();
    for (q, into) in [
        (
            "MATCH (n) UNWIND labels(n) AS k RETURN k, count(*) AS c",
            &mut inv.labels,
        ),
        (
            "MATCH ()-[r]->() RETURN type(r) AS k, count(*) AS c",
            &mut inv.rel_types,
        ),
        (
            "MATCH (n) UNWIND keys(n) AS k RETURN k, count(*) AS c",
            &mut inv.props,
        ),
        (
            "MATCH ()-[r]->() UNWIND keys(r) AS k RETURN k, count(*) AS c",
            &mut rel_props,
        ),
        (
            "MATCH (n) WHERE n[$id] IS NULL \
             RETURN reduce(s = '', l IN labels(n) | s + ':' + l) AS k, count(*) AS c",
            &mut inv.unnamed_nodes,
        ),
    ] {
        counts(db, q, into).await?;
    }
    for (k, c) in rel_props {
        *inv.props.entry(k).or_default() += c;
    }
    // Without APOC there are no triggers to list.
    if let Ok(mut rows) = db
        .execute(query("CALL apoc.trigger.list() YIELD name RETURN name"))
        .await
    {
        while let Ok(Some(row)) = rows.next().await {
            inv.triggers.insert(get(&row, "inventory", "name")?);
        }
    }
    Ok(inv)
}

async fn counts(
    db: &neo4rs::Graph,
    q: &str,
    into: &mut BTreeMap<String, u64>,
) -> Result<(), ReadError> {
    let mut rows = db
        .execute(query(q).param("id", ID_PROPERTY))
        .await
        .map_err(neo("inventory"))?;
    while let Some(row) = rows.next().await.map_err(neo("inventory"))? {
        let k: String = get(&row, "inventory", "k")?;
        let c: i64 = get(&row, "inventory", "c")?;
        *into.entry(k).or_default() += c as u64;
    }
    Ok(())
}

/// Every index (but token lookups and those a constraint owns) and every
/// constraint, as Neo4j's own `createStatement`.
pub async fn schema(db: &neo4rs::Graph) -> Result<BTreeSet<String>, ReadError> {
    let mut out = BTreeSet::new();
    for q in [
        "SHOW CONSTRAINTS YIELD createStatement RETURN createStatement AS s",
        "SHOW INDEXES YIELD type, owningConstraint, createStatement \
         WHERE type <> 'LOOKUP' AND owningConstraint IS NULL RETURN createStatement AS s",
    ] {
        let mut rows = db.execute(query(q)).await.map_err(neo("schema"))?;
        while let Some(row) = rows.next().await.map_err(neo("schema"))? {
            out.insert(get(&row, "schema", "s")?);
        }
    }
    Ok(out)
}

fn props(row: &neo4rs::Row, what: &'static str) -> Result<Props, ReadError> {
    let shape = |got: &dyn std::fmt::Debug| ReadError::Shape {
        what,
        field: "property",
        got: format!("{got:?}"),
    };
    let list: Vec<BoltType> = get(row, what, "props")?;
    let mut out = Props::new();
    for entry in list {
        let BoltType::List(parts) = &entry else {
            return Err(shape(&entry));
        };
        let [key, ty, text, raw] = parts.value.as_slice() else {
            return Err(shape(&entry));
        };
        let (BoltType::String(key), BoltType::String(ty)) = (key, ty) else {
            return Err(shape(&entry));
        };
        let ty = match raw {
            BoltType::Bytes(_) => BYTE_ARRAY.to_string(),
            _ => ty.value.clone(),
        };
        let text = match text {
            BoltType::String(s) => Text::One(s.value.clone()),
            BoltType::List(items) => Text::List(
                items
                    .value
                    .iter()
                    .map(|i| match i {
                        BoltType::String(s) => Ok(s.value.clone()),
                        other => Err(shape(other)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(shape(other)),
        };
        out.insert(key.value.clone(), Value { ty, text });
    }
    Ok(out)
}

fn get<T: serde::de::DeserializeOwned>(
    row: &neo4rs::Row,
    what: &'static str,
    field: &'static str,
) -> Result<T, ReadError> {
    row.get(field).map_err(|e| ReadError::Shape {
        what,
        field,
        got: e.to_string(),
    })
}

fn neo(what: &'static str) -> impl Fn(neo4rs::Error) -> ReadError {
    move |e| ReadError::Neo4j {
        what,
        message: e.to_string(),
    }
}
