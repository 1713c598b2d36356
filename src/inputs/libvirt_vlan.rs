//! libvirt's `<vlan>` grammar (`<tag id=…>`, `trunk`, `nativeMode`) read into [`PortVlans`],
//! with libvirt's own validation rules. The element may carry any namespace: the same grammar is
//! used inside our `urn:virt-vlan:1` metadata.

use crate::port_vlans::{Native, PortVlans};
use crate::text::shown;
use crate::vid::{VidSet, check_vid};

/// Line of `node` in its document (1-based), for messages.
pub fn line_of(node: roxmltree::Node) -> u32 {
    node.document().text_pos_at(node.range().start).row
}

/// Where each line of one document starts, so that a node's line is a binary search
/// (roxmltree's `text_pos_at` scans from the start of the document: asking it for every one
/// of thousands of interfaces made reading a domain quadratic). For error messages, where
/// it is asked once, [`line_of`] is enough.
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn of(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    /// The 1-based line `node` starts on.
    pub fn at(&self, node: roxmltree::Node) -> u32 {
        let pos = node.range().start;
        self.starts.partition_point(|s| *s <= pos) as u32
    }
}

/// Reads one `<vlan>` element.
///
/// Rules (as libvirt's `virNetDevVlanParse`): at least one `<tag id>`; more than one tag means
/// trunk; `trunk='no'` only with a single tag and no nativeMode; a nativeMode tag needs a trunk;
/// at most one tag has nativeMode. We also refuse VID 0/4095 and a tag listed twice.
pub fn parse_vlan(vlan: roxmltree::Node) -> Result<PortVlans, String> {
    let at = |n: roxmltree::Node, what: &str| format!("line {}: {what}", line_of(n));
    let mut tags: Vec<(u16, Option<Native>)> = Vec::new();
    for child in vlan.children().filter(|c| c.is_element()) {
        if child.tag_name().name() != "tag" {
            return Err(at(
                child,
                &format!(
                    "<{}> is not allowed in <vlan>; only <tag id='N'/>",
                    shown(child.tag_name().name())
                ),
            ));
        }
        if let Some(a) = child
            .attributes()
            .find(|a| a.name() != "id" && a.name() != "nativeMode")
        {
            return Err(at(
                child,
                &format!("<tag> has unknown attribute '{}'", shown(a.name())),
            ));
        }
        let raw_id = child
            .attribute("id")
            .ok_or_else(|| at(child, "<tag> without id; write <tag id='100'/>"))?;
        let id = shown(raw_id);
        let vid = raw_id
            .trim()
            .parse::<u64>()
            .map_err(|_| at(child, &format!("<tag id='{id}'>: not a number")))
            .and_then(|v| check_vid(v).map_err(|e| at(child, &format!("<tag id='{id}'>: {e}"))))?;
        let native = match child.attribute("nativeMode") {
            None => None,
            Some("untagged") => Some(Native::Untagged),
            Some("tagged") => Some(Native::Tagged),
            Some(other) => {
                return Err(at(
                    child,
                    &format!(
                        "<tag id='{id}' nativeMode='{}'>: nativeMode must be 'tagged' or 'untagged'",
                        shown(other)
                    ),
                ));
            }
        };
        if tags.iter().any(|(v, _)| *v == vid) {
            return Err(at(child, &format!("<tag id='{vid}'> is listed twice")));
        }
        if native.is_some() && tags.iter().any(|(_, n)| n.is_some()) {
            return Err(at(
                child,
                &format!("<tag id='{vid}'>: only one tag may have nativeMode"),
            ));
        }
        tags.push((vid, native));
    }
    if tags.is_empty() {
        return Err(at(
            vlan,
            "<vlan> has no <tag id='N'/>; each <vlan> needs at least one",
        ));
    }
    let native = tags.iter().find_map(|(v, n)| n.map(|n| (*v, n)));
    let trunk = match vlan.attribute("trunk") {
        Some("yes") => true,
        Some("no") => {
            if tags.len() > 1 {
                return Err(at(vlan, "<vlan trunk='no'> with more than one tag"));
            }
            if native.is_some() {
                return Err(at(vlan, "<vlan trunk='no'> with a nativeMode tag"));
            }
            false
        }
        Some(other) => {
            return Err(at(
                vlan,
                &format!(
                    "<vlan trunk='{}'>: trunk must be 'yes' or 'no'",
                    shown(other)
                ),
            ));
        }
        None => {
            if tags.len() == 1 && native.is_some() {
                return Err(at(
                    vlan,
                    "a nativeMode tag needs a trunk; write <vlan trunk='yes'>",
                ));
            }
            tags.len() > 1
        }
    };
    if !trunk {
        return Ok(PortVlans::access(tags[0].0));
    }
    let tagged: VidSet = tags
        .iter()
        .filter(|(_, n)| n.is_none())
        .map(|(v, _)| *v)
        .collect();
    let (pvid, mode) = match native {
        Some((v, n)) => (Some(v), n),
        None => (None, Native::Untagged),
    };
    PortVlans::build(pvid, mode, VidSet::new(), tagged).map_err(|e| at(vlan, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<PortVlans, String> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        parse_vlan(doc.root_element())
    }

    fn s(x: &str) -> VidSet {
        x.parse().unwrap()
    }

    #[test]
    fn one_tag_is_access() {
        assert_eq!(
            parse("<vlan><tag id='42'/></vlan>").unwrap(),
            PortVlans::access(42)
        );
        assert_eq!(
            parse("<vlan trunk='no'><tag id='42'/></vlan>").unwrap(),
            PortVlans::access(42)
        );
    }

    #[test]
    fn several_tags_imply_trunk() {
        let p = parse("<vlan><tag id='10'/><tag id='20'/></vlan>").unwrap();
        assert_eq!(p.pvid, None);
        assert_eq!(p.tagged, s("10,20"));
        assert!(p.untagged.is_empty());
    }

    #[test]
    fn single_tag_trunk_yes_is_tagged() {
        let p = parse("<vlan trunk='yes'><tag id='10'/></vlan>").unwrap();
        assert_eq!(p.tagged, s("10"));
        assert_eq!(p.pvid, None);
    }

    #[test]
    fn native_untagged_and_tagged() {
        let p =
            parse("<vlan trunk='yes'><tag id='100' nativeMode='untagged'/><tag id='200'/></vlan>")
                .unwrap();
        assert_eq!(p.pvid, Some(100));
        assert_eq!(p.untagged, s("100"));
        assert_eq!(p.tagged, s("200"));

        let p = parse("<vlan><tag id='100' nativeMode='tagged'/><tag id='200'/></vlan>").unwrap();
        assert_eq!(p.pvid, Some(100));
        assert!(p.untagged.is_empty());
        assert_eq!(p.tagged, s("100,200"));
    }

    #[test]
    fn namespaced_elements_read_the_same() {
        let p = parse(
            "<vv:vlan xmlns:vv='urn:virt-vlan:1' trunk='yes'>\
               <vv:tag id='5' nativeMode='untagged'/><vv:tag id='6'/></vv:vlan>",
        )
        .unwrap();
        assert_eq!(p.pvid, Some(5));
        assert_eq!(p.tagged, s("6"));
    }

    #[test]
    fn libvirt_rules_refused_with_line_and_element() {
        let cases = [
            ("<vlan/>", "no <tag"),
            (
                "<vlan trunk='no'><tag id='1'/><tag id='2'/></vlan>",
                "trunk='no'",
            ),
            (
                "<vlan trunk='no'><tag id='1' nativeMode='untagged'/></vlan>",
                "trunk='no'",
            ),
            (
                "<vlan><tag id='1' nativeMode='untagged'/></vlan>",
                "needs a trunk",
            ),
            (
                "<vlan><tag id='1' nativeMode='untagged'/><tag id='2' nativeMode='tagged'/></vlan>",
                "only one tag",
            ),
            ("<vlan trunk='maybe'><tag id='1'/></vlan>", "trunk='maybe'"),
            ("<vlan><tag id='4095'/></vlan>", "4095"),
            ("<vlan><tag id='0'/></vlan>", "VID 0"),
            ("<vlan><tag id='x1'/></vlan>", "not a number"),
            ("<vlan><tag/></vlan>", "without id"),
            ("<vlan><tag id='3'/><tag id='3'/></vlan>", "listed twice"),
            (
                "<vlan><tag id='3' native='untagged'/></vlan>",
                "unknown attribute",
            ),
            ("<vlan><vid id='3'/></vlan>", "<vid> is not allowed"),
            (
                "<vlan><tag id='3'/><tag id='4' nativeMode='sideways'/></vlan>",
                "nativeMode must be",
            ),
        ];
        for (xml, want) in cases {
            let e = parse(xml).unwrap_err();
            assert!(e.contains(want), "{xml}: {e}");
            assert!(e.starts_with("line 1:"), "{xml}: {e}");
        }
    }

    #[test]
    fn line_numbers_point_at_the_offending_tag() {
        let e = parse("<vlan>\n<tag id='1'/>\n<tag id='4095'/>\n</vlan>").unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
    }

    #[test]
    fn line_index_agrees_with_roxmltree() {
        let text = "<a>\n  <b/>\n\n<c>\n<d/></c>\n</a>";
        let doc = roxmltree::Document::parse(text).unwrap();
        let lines = Lines::of(text);
        for n in doc.descendants().filter(|n| n.is_element()) {
            assert_eq!(lines.at(n), line_of(n), "<{}>", n.tag_name().name());
        }
    }
}
