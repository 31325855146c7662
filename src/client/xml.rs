//! A small element tree read from the daemon's XML: enough to walk EC2 answers by name.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// An element with its local name (namespace prefix dropped), children and own text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the child `name`, trimmed; `None` if there is no such child.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The `item` children of the list element `name` (none if it is absent or empty).
    pub(crate) fn items<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.child(name)
            .into_iter()
            .flat_map(|list| list.children_named("item"))
    }
}

/// Parses a whole document; its root element is returned.
pub(crate) fn parse(doc: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(doc);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => stack.push(Element {
                name: e.local_name().as_ref().to_string(),
                ..Element::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: e.local_name().as_ref().to_string(),
                    ..Element::default()
                };
                close(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => append(&mut stack, &t.xml10_content()),
            Event::CData(t) => append(&mut stack, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let ch;
                let s = if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    ch = c.to_string();
                    ch.as_str()
                } else {
                    resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                };
                append(&mut stack, s);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "the document has no element".into())
}

fn append(stack: &mut [Element], s: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(s);
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_with_entities_and_namespaces() {
        let doc = "<?xml version=\"1.0\"?>\n<a:R xmlns:a=\"x\"><a:b>1 &lt;&amp;&#65;&#x42; 2</a:b><c/><c>z</c></a:R>";
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(root.child_text("b"), Some("1 <&AB 2"));
        assert_eq!(root.children_named("c").count(), 2);
        assert_eq!(root.child_text("missing"), None);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a>&bogus;</a>",
            "just text",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
