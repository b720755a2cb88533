//! What the templates' markup must hold, read from the templates with template
//! expressions taken out: every class a page uses is styled (a class the stylesheet
//! never names renders as plain markup: issue 15 found `meta`, `pre-wrap`,
//! `field-inline`, `field-wide` that way; a class built from a value, `badge-{{ … }}`,
//! is left to its own tests), and every input has a label a screen reader announces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn templates(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            templates(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

/// The text with `{{ … }}` and `{% … %}` blanked out.
fn without_expressions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['{']) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let close = match from.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => "#}",
            _ => {
                out.push('{');
                rest = &from[1..];
                continue;
            }
        };
        match from.find(close) {
            Some(end) => {
                // A marker: a class name glued to an expression is not a whole name.
                out.push('\u{1}');
                rest = &from[end + 2..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn every_class_in_the_templates_is_in_the_stylesheet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let css = std::fs::read_to_string(root.join("static/css/app.css")).unwrap();
    let styled: BTreeSet<String> = css
        .split('.')
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
        .collect();
    let mut pages = Vec::new();
    templates(&root.join("templates"), &mut pages);
    let mut unstyled: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in &pages {
        let text = without_expressions(text);
        for attribute in text.split("class=\"").skip(1) {
            let value = attribute.split('"').next().unwrap_or_default();
            for class in value.split_whitespace() {
                if class.contains('\u{1}') || styled.contains(class) {
                    continue;
                }
                unstyled
                    .entry(class.to_owned())
                    .or_default()
                    .insert(file.trim_start_matches(root.to_str().unwrap()).to_owned());
            }
        }
    }
    assert!(
        unstyled.is_empty(),
        "classes no rule of static/css/app.css names: {unstyled:#?}"
    );
}

#[test]
fn every_input_has_a_label() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = Vec::new();
    templates(&root.join("templates"), &mut pages);
    let mut unlabelled = Vec::new();
    for (file, text) in &pages {
        let text = without_expressions(text);
        for (at, _) in text
            .match_indices("<input")
            .chain(text.match_indices("<select"))
            .chain(text.match_indices("<textarea"))
        {
            let tag = &text[at..at + text[at..].find('>').unwrap_or(0)];
            if [
                "type=\"hidden\"",
                "type=\"submit\"",
                "aria-label=",
                "aria-labelledby=",
            ]
            .iter()
            .any(|a| tag.contains(a))
            {
                continue;
            }
            let inside_label = text[..at].rfind("<label").is_some_and(|open| {
                text[..at]
                    .rfind("</label>")
                    .is_none_or(|close| close < open)
            });
            let named = tag
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .filter(|id| !id.contains('\u{1}'))
                .is_some_and(|id| text.contains(&format!("for=\"{id}\"")));
            let built_id = tag.contains("id=\"")
                && tag
                    .split("id=\"")
                    .nth(1)
                    .is_some_and(|r| r.split('"').next().is_some_and(|id| id.contains('\u{1}')));
            if !(inside_label || named || built_id) {
                unlabelled.push(format!(
                    "{}: {}",
                    file.trim_start_matches(root.to_str().unwrap()),
                    tag.chars().take(90).collect::<String>()
                ));
            }
        }
    }
    assert!(
        unlabelled.is_empty(),
        "inputs without a label: {unlabelled:#?}"
    );
}

#[test]
fn every_page_frame_lets_keyboards_skip_the_navigation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = std::fs::read_to_string(root.join("templates/base.html")).unwrap();
    let skip = base
        .find("class=\"skip-link\" href=\"#content\"")
        .expect("a skip link");
    let nav = base.find("<nav").unwrap();
    assert!(skip < nav, "the skip link comes before the navigation");
    assert!(base.contains("id=\"content\""), "its target exists");
}
