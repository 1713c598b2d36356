//! `virt-vlan show --diagram` and `--svg FILE`: each managed bridge drawn as a switch the way
//! kvmvlan's README draws one (seeds/000) — uplinks on the left towards the physical switch,
//! guest ports on the right with the guest (`vm1(net0)`) each leads to, the bridge's own port
//! hanging below towards the host, and beside every port its PVID and VIDs. One layout, in
//! character cells, is rendered twice: as text and as SVG, so both always say the same.
//! The SVG is written by hand: three kinds of element (rect, line, text) with fixed
//! attributes, less than an SVG crate's builder would take. Pure: built from `show`'s rows.

use super::Row;
use crate::vid::VidSet;
use std::fmt::Write;

/// Label for what an uplink leads to.
const UPSTREAM: &str = "Physical switch";
/// Label for what the bridge's own port leads to.
const HOST: &str = "to host";
/// Inner width of the switch at least (as in the seed's drawing).
const MIN_INNER: usize = 20;
/// VID lists wrap past this many characters.
const WRAP: usize = 28;

/// Every managed bridge in `rows` as text, one drawing after another.
pub fn text(rows: &[Row]) -> String {
    bridges(rows)
        .iter()
        .map(|l| l.to_text())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every managed bridge in `rows` as one SVG document, drawings stacked top to bottom.
pub fn svg(rows: &[Row]) -> String {
    let layouts = bridges(rows);
    let width = layouts.iter().map(|l| l.width).max().unwrap_or(20) + 2;
    let height: usize = layouts.iter().map(|l| l.height + 1).sum::<usize>().max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" \
         font-size=\"{FONT}\">",
        w = px(width as f64 * CW),
        h = px(height as f64 * CH),
    );
    let _ = writeln!(
        out,
        "<title>virt-vlan: {}</title>",
        escape(
            &layouts
                .iter()
                .map(|l| l.bridge.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    let mut top = 0;
    for l in &layouts {
        let _ = writeln!(
            out,
            "<g transform=\"translate({},{})\">",
            px(CW / 2.0),
            px(top as f64 * CH)
        );
        l.to_svg(&mut out);
        out.push_str("</g>\n");
        top += l.height + 1;
    }
    out.push_str("</svg>\n");
    out
}

/// What a box stands for (its colour in SVG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Switch,
    Uplink,
    Guest,
    Foreign,
    Host,
}

/// A box in cells, drawn as in the seed: `_` along row `top` between the sides, `|` at
/// columns `left` and `right` on rows `top+1..=bottom`, `_` along row `bottom`.
#[derive(Clone, Copy, Debug)]
struct Frame {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
    kind: Kind,
}

/// Text at a cell: a port's name, a PVID/VID label or what a port leads to.
#[derive(Clone, Debug)]
struct Text {
    col: usize,
    row: usize,
    text: String,
    /// A port's name (bold in SVG).
    name: bool,
}

/// A wire: dashes along `row` over columns `from..to`, or `|` down `col` over rows
/// `from..=to`.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Across {
        row: usize,
        from: usize,
        to: usize,
        /// The cell after the last dash is a box's side (the wire runs into it).
        into_box: bool,
    },
    Down {
        col: usize,
        from: usize,
        to: usize,
    },
}

#[derive(Debug)]
struct Layout {
    bridge: String,
    width: usize,
    height: usize,
    frames: Vec<Frame>,
    texts: Vec<Text>,
    wires: Vec<Wire>,
}

fn bridges(rows: &[Row]) -> Vec<Layout> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.bridge.as_str()) {
            names.push(&r.bridge);
        }
    }
    names
        .into_iter()
        .map(|b| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.bridge == b).collect();
            layout(b, &mine)
        })
        .collect()
}

/// Names may hold characters the kernel allows and a terminal should not get raw.
fn clean(s: &str) -> String {
    s.escape_debug().to_string()
}

/// `key=a,b,c` wrapped at commas past `WRAP` characters, continuation lines indented.
fn wrapped(key: &str, value: &str) -> Vec<String> {
    let mut lines = vec![format!("{key}=")];
    let indent = " ".repeat(key.len() + 1);
    for (i, item) in value.split(',').enumerate() {
        let last = lines.last_mut().unwrap();
        let piece = if i == 0 {
            item.to_string()
        } else {
            format!(",{item}")
        };
        if i > 0 && last.len() + piece.len() > WRAP {
            last.push(',');
            lines.push(format!("{indent}{item}"));
        } else {
            last.push_str(&piece);
        }
    }
    lines
}

/// What is written beside a port: its PVID (`(tagged)` when the native VLAN leaves tagged),
/// its tagged VIDs (`vids`, as in the seed), extra untagged VIDs and VIDs someone else put
/// there.
fn port_labels(r: &Row) -> Vec<String> {
    let set = |s: &str| s.parse::<VidSet>().unwrap_or_default();
    let (untagged, tagged, foreign) = (set(&r.untagged), set(&r.tagged), set(&r.foreign));
    let mut out = vec![match r.pvid {
        Some(p) if tagged.contains(p) => format!("pvid={p} (tagged)"),
        Some(p) => format!("pvid={p}"),
        None => "pvid=N/A".to_string(),
    }];
    let mut pvid = VidSet::new();
    if let Some(p) = r.pvid {
        pvid.insert(p);
    }
    let vids = tagged.difference(&pvid);
    if vids.is_empty() {
        out.push("vids=N/A".to_string());
    } else {
        out.extend(wrapped("vids", &vids.to_string()));
    }
    let extra = untagged.difference(&pvid);
    if !extra.is_empty() {
        out.extend(wrapped("untagged", &extra.to_string()));
    }
    if !foreign.is_empty() {
        out.extend(wrapped("foreign", &foreign.to_string()));
    }
    out
}

/// What a guest-side port leads to: the guest and its interface, or nothing known.
fn peer(r: &Row) -> Option<String> {
    match (&r.domain, &r.interface, r.role.as_str()) {
        (Some(d), Some(i), _) => Some(format!("{}({})", clean(d), clean(i))),
        (Some(d), None, _) => Some(clean(d)),
        (None, _, "foreign") => Some("(not managed)".to_string()),
        _ => None,
    }
}

fn width_of(lines: &[String]) -> usize {
    lines.iter().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// One port as drawn: its name, the labels beside it, what it leads to.
struct Port {
    name: String,
    labels: Vec<String>,
    peer: Option<String>,
    kind: Kind,
}

impl Port {
    fn of(r: &Row, kind: Kind) -> Port {
        Port {
            name: clean(&r.port),
            labels: port_labels(r),
            peer: peer(r),
            kind,
        }
    }
}

/// Where things go across: `[peer ---]|uplink|  switch  |guest|------peer`.
struct Columns {
    /// The uplink boxes' left side.
    box_left: usize,
    /// The switch's left side (the uplink boxes' right side).
    x: usize,
    /// The switch's width inside.
    inner: usize,
    /// The switch's right side (the guest boxes' left side).
    right: usize,
    /// Inside widths of the guest boxes and the bridge's own box.
    right_box: usize,
    host_box: usize,
    /// Width of the widest guest label (they are aligned towards the guest ports).
    rw: usize,
}

fn columns(uplinks: &[Port], guests: &[Port], host: Option<&Port>) -> Columns {
    let widest_name = |ports: &[Port]| ports.iter().map(|p| p.name.chars().count()).max();
    let widest_label = |ports: &[Port]| ports.iter().map(|p| width_of(&p.labels)).max();
    let left_box = widest_name(uplinks).unwrap_or(0).max(5);
    let (box_left, x) = if uplinks.is_empty() {
        (0, 1)
    } else {
        let bl = 1 + UPSTREAM.len() + 1 + 8;
        (bl, bl + left_box + 1)
    };
    let lw = widest_label(uplinks).unwrap_or(0);
    let rw = widest_label(guests).unwrap_or(0);
    let sw = host.map_or(0, |h| width_of(&h.labels));
    let host_box = host.map_or(0, |h| h.name.chars().count() + 2).max(6);
    let inner = MIN_INNER
        .max(1 + lw + 1)
        .max(7 + rw + 1)
        .max(3 + sw + 1)
        .max(5 + host_box + 2 + 1);
    Columns {
        box_left,
        x,
        inner,
        right: x + inner + 1,
        right_box: widest_name(guests).unwrap_or(0).max(5),
        host_box,
        rw,
    }
}

fn layout(bridge: &str, rows: &[&Row]) -> Layout {
    // the bridge's own port is the row named as the bridge (its role is `foreign` when the
    // config says nothing about it)
    let host = rows
        .iter()
        .find(|r| r.port == r.bridge)
        .map(|r| Port::of(r, Kind::Host));
    let uplinks: Vec<Port> = rows
        .iter()
        .filter(|r| r.role == "uplink")
        .map(|r| Port::of(r, Kind::Uplink))
        .collect();
    let guests: Vec<Port> = rows
        .iter()
        .filter(|r| r.role != "uplink" && r.port != r.bridge)
        .map(|r| {
            let kind = if r.role == "foreign" {
                Kind::Foreign
            } else {
                Kind::Guest
            };
            Port::of(r, kind)
        })
        .collect();
    let c = columns(&uplinks, &guests, host.as_ref());
    let mut l = Layout {
        bridge: bridge.to_string(),
        width: 0,
        height: 0,
        frames: Vec::new(),
        texts: Vec::new(),
        wires: Vec::new(),
    };
    let last_uplink_bottom = l.uplinks(&c, &uplinks);
    let next = l.guests(&c, &guests, last_uplink_bottom);
    l.host(&c, host.as_ref(), next);
    l
}

impl Layout {
    fn text(&mut self, col: usize, row: usize, text: String, name: bool) {
        self.width = self.width.max(col + text.chars().count());
        self.texts.push(Text {
            col,
            row,
            text,
            name,
        });
    }

    /// Uplinks on the left, top to bottom, the name on the second label row, where the wire
    /// from the physical switch comes in. Returns the last one's bottom row.
    fn uplinks(&mut self, c: &Columns, ports: &[Port]) -> Option<usize> {
        let mut top = 1;
        let mut last = None;
        for p in ports {
            let bottom = top + p.labels.len() + 1;
            self.frames.push(Frame {
                left: c.box_left,
                top,
                right: c.x,
                bottom,
                kind: p.kind,
            });
            self.text(c.box_left + 1, top + 2, p.name.clone(), true);
            self.text(1, top + 2, UPSTREAM.to_string(), false);
            self.wires.push(Wire::Across {
                row: top + 2,
                from: 1 + UPSTREAM.len() + 1,
                to: c.box_left,
                into_box: true,
            });
            for (i, s) in p.labels.iter().enumerate() {
                self.text(c.x + 2, top + 1 + i, s.clone(), false);
            }
            last = Some(bottom);
            top = bottom + 1;
        }
        last
    }

    /// Guest (and other) ports on the right, below the uplinks: the first one's top on the
    /// last uplink's bottom row. Returns the first row below everything so far.
    fn guests(&mut self, c: &Columns, ports: &[Port], after_uplinks: Option<usize>) -> usize {
        let mut top = after_uplinks.unwrap_or(1);
        let mut next = after_uplinks.map_or(1, |b| b + 1);
        for p in ports {
            let bottom = top + p.labels.len();
            self.frames.push(Frame {
                left: c.right,
                top,
                right: c.right + c.right_box + 1,
                bottom,
                kind: p.kind,
            });
            self.text(c.right + 1, top + 1, p.name.clone(), true);
            for (i, s) in p.labels.iter().enumerate() {
                self.text(c.x + c.inner - c.rw, top + 1 + i, s.clone(), false);
            }
            if let Some(peer) = &p.peer {
                let from = c.right + c.right_box + 2;
                self.wires.push(Wire::Across {
                    row: top + 1,
                    from,
                    to: from + 6,
                    into_box: false,
                });
                self.text(from + 6, top + 1, peer.clone(), false);
            }
            self.width = self.width.max(c.right + c.right_box + 2);
            next = bottom + 1;
            top = bottom + 1;
        }
        next
    }

    /// The switch itself, the bridge's own port's labels at its foot after a blank row, and
    /// the port's box hanging below with the wire to the host.
    fn host(&mut self, c: &Columns, host: Option<&Port>, next: usize) {
        let labels = host.map_or(&[][..], |h| &h.labels[..]);
        let bottom = next + labels.len().max(1);
        for (i, s) in labels.iter().enumerate() {
            self.text(c.x + 4, bottom + 1 - labels.len() + i, s.clone(), false);
        }
        self.frames.insert(
            0,
            Frame {
                left: c.x,
                top: 0,
                right: c.right,
                bottom,
                kind: Kind::Switch,
            },
        );
        self.width = self.width.max(c.right + 1);
        self.height = bottom + 1;
        let Some(h) = host else {
            return;
        };
        let left = c.x + 6;
        self.frames.push(Frame {
            left,
            top: bottom,
            right: left + c.host_box + 1,
            bottom: bottom + 2,
            kind: h.kind,
        });
        self.text(left + 2, bottom + 1, h.name.clone(), true);
        let col = left + 1 + c.host_box / 2;
        self.wires.push(Wire::Down {
            col,
            from: bottom + 3,
            to: bottom + 4,
        });
        self.wires.push(Wire::Across {
            row: bottom + 4,
            from: col + 1,
            to: col + 7,
            into_box: false,
        });
        self.text(col + 8, bottom + 4, HOST.to_string(), false);
        self.height = bottom + 5;
    }

    fn to_text(&self) -> String {
        let mut grid = vec![vec![' '; self.width]; self.height];
        for f in &self.frames {
            for row in [f.top, f.bottom] {
                grid[row][f.left + 1..f.right].fill('_');
            }
            for row in grid.iter_mut().take(f.bottom + 1).skip(f.top + 1) {
                row[f.left] = '|';
                row[f.right] = '|';
            }
        }
        for w in &self.wires {
            match *w {
                Wire::Across { row, from, to, .. } => grid[row][from..to].fill('-'),
                Wire::Down { col, from, to } => {
                    for row in grid.iter_mut().take(to + 1).skip(from) {
                        row[col] = '|';
                    }
                }
            }
        }
        for t in &self.texts {
            for (i, ch) in t.text.chars().enumerate() {
                // on a box's edge, a space in the text keeps the edge
                if ch != ' ' || grid[t.row][t.col + i] != '_' {
                    grid[t.row][t.col + i] = ch;
                }
            }
        }
        let mut out = String::new();
        for row in grid {
            let line: String = row.into_iter().collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn to_svg(&self, out: &mut String) {
        for f in &self.frames {
            let (fill, stroke) = match f.kind {
                Kind::Switch => ("#eef3fa", "#1d3557"),
                Kind::Uplink => ("#ffe6bf", "#8a5a00"),
                Kind::Guest => ("#dcf2dc", "#25652b"),
                Kind::Foreign => ("#eeeeee", "#666666"),
                Kind::Host => ("#dde3ff", "#2b3a8f"),
            };
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" \
                 stroke=\"{stroke}\" stroke-width=\"{}\"/>",
                px((f.left as f64 + 0.5) * CW),
                px((f.top + 1) as f64 * CH),
                px((f.right - f.left) as f64 * CW),
                px((f.bottom - f.top) as f64 * CH),
                if f.kind == Kind::Switch { 2 } else { 1 }
            );
        }
        for w in &self.wires {
            let (x1, y1, x2, y2) = match *w {
                Wire::Across {
                    row,
                    from,
                    to,
                    into_box,
                } => {
                    let y = (row as f64 + 0.5) * CH;
                    let end = if into_box {
                        (to as f64 + 0.5) * CW
                    } else {
                        to as f64 * CW - 2.0
                    };
                    ((from as f64 - 0.5) * CW, y, end, y)
                }
                Wire::Down { col, from, to } => {
                    let x = (col as f64 + 0.5) * CW;
                    (x, from as f64 * CH, x, (to as f64 + 0.5) * CH)
                }
            };
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333333\" \
                 stroke-width=\"1.5\"/>",
                px(x1),
                px(y1),
                px(x2),
                px(y2)
            );
        }
        for t in &self.texts {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" xml:space=\"preserve\"{}>{}</text>",
                px(t.col as f64 * CW),
                px((t.row as f64 + 0.75) * CH),
                if t.name {
                    " font-weight=\"bold\""
                } else {
                    " fill=\"#222222\""
                },
                escape(&t.text)
            );
        }
    }
}

/// A cell in SVG pixels (DejaVu Sans Mono's advance is 0.602 em) and the font size.
const CW: f64 = 8.5;
const CH: f64 = 20.0;
const FONT: u32 = 14;

/// Pixels with at most two decimals, no trailing zeros (stable output for the golden file).
fn px(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// seeds/000's switch: br0 with eth0 to the physical switch, VM1 on veth0, VM2 on veth1
    /// and veth2, the host on br0 itself.
    fn seed000() -> Vec<Row> {
        let row = |port: &str,
                   role: &str,
                   pvid,
                   untagged: &str,
                   tagged: &str,
                   guest: Option<(&str, &str)>| Row {
            bridge: "br0".into(),
            port: port.into(),
            role: role.into(),
            pvid: Some(pvid),
            untagged: untagged.into(),
            tagged: tagged.into(),
            foreign: String::new(),
            source: "config t.toml:1".into(),
            domain: guest.map(|g| g.0.to_string()),
            interface: guest.map(|g| g.1.to_string()),
        };
        vec![
            row("br0", "self", 1, "1", "200", None),
            row("eth0", "uplink", 1, "1", "100,200,300", None),
            row(
                "veth0",
                "guest",
                100,
                "100",
                "200,300",
                Some(("VM1", "eth0")),
            ),
            row("veth1", "guest", 1, "1", "100,200", Some(("VM2", "eth0"))),
            row("veth2", "guest", 300, "300", "", Some(("VM2", "eth1"))),
        ]
    }

    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            got == want,
            "{} differs (UPDATE_GOLDEN=1 rewrites it):\n--- got\n{got}\n--- want\n{want}",
            path.display()
        );
    }

    #[test]
    fn seed_000_drawn_as_text_matches_the_golden_file() {
        golden("diagram-seed000.txt", &text(&seed000()));
    }

    #[test]
    fn seed_000_drawn_as_svg_matches_the_golden_file() {
        let svg = svg(&seed000());
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
        golden("diagram-seed000.svg", &svg);
    }

    #[test]
    fn labels_say_native_tagged_extra_untagged_foreign_and_wrap() {
        let mut r = seed000()[2].clone();
        r.pvid = Some(30);
        r.untagged = "5".into();
        r.tagged = "30,31".into();
        r.foreign = "9".into();
        assert_eq!(
            port_labels(&r),
            ["pvid=30 (tagged)", "vids=31", "untagged=5", "foreign=9"]
        );
        r.pvid = None;
        r.tagged = (1..=30)
            .map(|v| (v * 2).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let l = port_labels(&r);
        assert_eq!(l[0], "pvid=N/A");
        assert!(l.iter().all(|s| s.len() <= WRAP + 1), "{l:?}");
        assert!(
            l[1].starts_with("vids=2,4,") && l[2].starts_with("     "),
            "{l:?}"
        );
    }

    #[test]
    fn a_bridge_without_uplinks_and_a_foreign_port_still_draws() {
        let mut rows = seed000();
        rows.remove(1);
        rows[0].role = "foreign".into(); // no [bridges.br0.self]: still the host's port
        rows[1].role = "foreign".into();
        rows[1].domain = None;
        rows[1].port = "tap\u{1b}9".into();
        let t = text(&rows);
        assert!(!t.contains("Physical switch"), "{t}");
        assert!(t.contains("|tap\\u{1b}9|------(not managed)"), "{t}");
        assert!(t.contains("| br0  |") && t.contains("to host"), "{t}");
        assert_eq!(t.matches("(not managed)").count(), 1, "{t}");
        assert!(!t.contains('\u{1b}'));
    }
}
