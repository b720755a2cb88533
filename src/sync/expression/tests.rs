use super::*;
use serde_json::json;
use std::time::Instant;

fn compiled(source: &str) -> Result<Environment<'static>, String> {
    let mut env = environment(BTreeMap::new(), &Limits::default());
    compile(&mut env, "x".into(), source, &Limits::default())?;
    Ok(env)
}

fn run(source: &str, record: Json) -> Result<Json, String> {
    let env = compiled(source)?;
    eval(
        &env,
        "x",
        minijinja::context! { record => Value::from(minijinja::value::Serde(&record)) },
    )
}

/// The same expression in a plain minijinja environment, as the reference.
fn plain(source: &str, record: &Json) -> Json {
    let env = Environment::new();
    let value = env
        .compile_expression(source)
        .unwrap()
        .eval(minijinja::context! { record => Value::from(minijinja::value::Serde(record)) })
        .unwrap();
    serde_json::to_value(&value).unwrap()
}

#[test]
fn guarded_expressions_mean_what_they_mean_in_minijinja() {
    let record = json!({
        "id": 7, "name": " Ada ", "tags": ["a", "b", "c"], "price": 2.5, "qty": 4,
        "nested": {"email": "ADA@EXAMPLE.COM"}, "empty": "", "text": "a,b,,c"
    });
    for source in [
        "record.name | trim | lower",
        "record.nested.email | lower",
        "record.name ~ '-' ~ record.id",
        "record.price * record.qty",
        "record.qty * 3 + 1",
        "record.qty + 0.5",
        "'ab' * 3",
        "record.tags + ['d']",
        "record.tags * 2",
        "record.tags[1:]",
        "record.tags[::-1]",
        "record.name[1:3]",
        "record.tags | join(', ')",
        "record.tags | map('upper') | join",
        "record.tags | select('equalto', 'b') | list",
        "record.text | split(',') | list",
        "record.missing | default('none')",
        "record.missing | default('x', true)",
        "record.empty | default('x', true)",
        "record.tags | sort(reverse=true) | join",
        "'yes' if record.qty > 3 else 'no'",
        "record.id is number and record.name is string",
        "not record.missing",
        "-record.qty",
        "record.qty ** 2 // 3 % 5",
        "record.tags | length",
        "'b' in record.tags",
        "'z' not in record.tags",
        "1 < record.qty <= 4",
        "{'a': record.id, 'b': [1, 2]}",
        "(record.id, record.qty)",
        "range(3) | list",
        "record.nested['email']",
        "'%s-%05d' | format(record.name, record.id)",
        "record.tags | first ~ record.tags | last",
        "\"quote\\\"and\\\\slash\" ~ '}}{%'",
        "record.price | round(0) | int",
        "record | dictsort | first | first",
        "record.tags | batch(2) | list",
        "record.name | replace(' ', '_')",
    ] {
        assert_eq!(
            run(source, record.clone()).unwrap_or_else(|e| panic!("{source}: {e}")),
            plain(source, &record),
            "{source}"
        );
    }
}

#[test]
fn the_three_hostile_payloads_are_refused_at_compile_time_quickly() {
    let memory = "(('x'*100000000) ~ ('x'*100000000) ~ ('x'*100000000) ~ ('x'*100000000))|length";
    let stack = format!("{}1", "-".repeat(20_000));
    let breakout = "1)|tojson }}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}{{ (1";
    for source in [memory, stack.as_str(), breakout] {
        let started = Instant::now();
        let Err(error) = compiled(source) else {
            panic!("{source} compiled")
        };
        assert!(
            started.elapsed().as_millis() < 100,
            "{error}: took {:?}",
            started.elapsed()
        );
    }
    assert!(compiled(memory).err().unwrap().contains("limit"));
}

#[test]
fn runtime_growth_fails_the_record_not_the_process() {
    let big = "x".repeat(200_000);
    let record = json!({ "big": big, "n": 100_000_000u64 });
    for source in [
        "record.big * record.n",
        "record.big * 10",
        "[record.big ~ 1, record.big ~ 2, record.big ~ 3, record.big ~ 4, record.big ~ 5, record.big ~ 6, record.big ~ 7, record.big ~ 8, record.big ~ 9, record.big ~ 10, record.big ~ 11, record.big ~ 12, record.big ~ 13, record.big ~ 14, record.big ~ 15, record.big ~ 16, record.big ~ 17, record.big ~ 18, record.big ~ 19, record.big ~ 20, record.big ~ 21, record.big ~ 22] | length",
        "record.big | replace('x', record.big)",
        "range(100000) | join(record.big)",
        "range(100000) | map('string') | map('upper') | join(',') | length",
        "[1] | batch(100000000, 'x') | list",
        "'%0100000000d' | format(1)",
        "record.big | list | length",
    ] {
        let started = Instant::now();
        let error = run(source, record.clone())
            .err()
            .unwrap_or_else(|| panic!("{source} ran"));
        assert!(
            error.contains("limit") || error.contains("longer than") || error.contains("more than"),
            "{source}: {error}"
        );
        assert!(
            started.elapsed().as_millis() < 500,
            "{source}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn compiling_on_a_small_stack_never_overflows() {
    // Worst shapes within the limits, on a thread with the default 2 MB stack.
    let cases = vec![
        format!("{}1{}", "(".repeat(31), ")".repeat(31)),
        format!("{}1", "-".repeat(31)),
        vec!["record.a"; 39].join(" ~ "),
        format!("record{}", ".a".repeat(39)),
        format!("record{}", "|lower".repeat(39)),
        vec!["1 if record.a else"; 15].join(" ") + " 2",
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for source in cases {
                let _ = compiled(&source);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn loops_and_statements_cannot_be_written() {
    assert!(compiled("record.a }}{% for x in record %}").is_err());
    // The globals taken out of the environment are unknown names, refused at save.
    for removed in ["namespace()", "debug()"] {
        let refused = compiled(removed).err().unwrap();
        assert!(refused.contains("There is no function named"), "{refused}");
    }
}

mod fuzz {
    //! Random text and random well-formed expressions through the compiler: nothing may
    //! panic, overflow or run past its budget. Bounded in cases so CI stays quick.
    use super::*;
    use proptest::prelude::*;

    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("record.a".to_owned()),
            Just("record".to_owned()),
            Just("'x'".to_owned()),
            Just("100000000".to_owned()),
            Just("[1, 2]".to_owned()),
            Just("range(100000)".to_owned()),
            Just("range(9000)".to_owned()),
            "[a-z]{1,5}".prop_map(|s| format!("'{s}'")),
            (0i64..1_000_000).prop_map(|n| n.to_string()),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        atom().prop_recursive(6, 64, 4, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    inner.clone(),
                    prop::sample::select(vec![
                        "*", "~", "+", "-", "**", "//", "==", " and ", " in "
                    ])
                )
                    .prop_map(|(a, b, op)| format!("({a}{op}{b})")),
                (
                    inner.clone(),
                    prop::sample::select(vec![
                        "upper", "join", "list", "length", "string", "tojson", "reverse", "sort",
                        "first", "unique"
                    ])
                )
                    .prop_map(|(a, f)| format!("({a}|{f})")),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| format!("({a}|replace('x', {b}))")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}|join({b}))")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("({a} if {b} else {a})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn any_text_compiles_or_is_refused_without_panicking(source in "\\PC{0,300}") {
            let _ = compiled(&source);
        }

        #[test]
        fn any_expression_stays_within_its_budget(source in expression()) {
            let started = Instant::now();
            let _ = run(&source, json!({"a": "abc"}));
            prop_assert!(started.elapsed().as_millis() < 1_000, "{source}: {:?}", started.elapsed());
        }
    }
}

#[test]
fn unknown_filters_tests_and_functions_are_refused_at_compile_time() {
    let refused = compiled("record.city | upperr").err().unwrap();
    assert!(refused.contains("no filter named 'upperr'"), "{refused}");
    assert!(refused.contains("Did you mean 'upper'?"), "{refused}");
    // Even where no record could reach it (a branch never taken on an empty record).
    let refused = compiled("record.a if record.b else record.c | nosuchthing")
        .err()
        .unwrap();
    assert!(
        refused.contains("no filter named 'nosuchthing'"),
        "{refused}"
    );
    assert!(refused.contains("Filters: "), "{refused}");
    let refused = compiled("record.n is oddish").err().unwrap();
    assert!(refused.contains("no test named 'oddish'"), "{refused}");
    let refused = compiled("frobnicate(record.a)").err().unwrap();
    assert!(
        refused.contains("no function named 'frobnicate'"),
        "{refused}"
    );
    for fine in [
        "record.email | lower | trim",
        "record.country | lookup('countries')",
        "record.created | date('%d.%m.%Y')",
        "record.n is odd",
        "range(3) | list",
        "dict(a=1)",
        "record.tags | map('upper') | join(',')",
    ] {
        assert!(compiled(fine).is_ok(), "{fine}: {:?}", compiled(fine).err());
    }
}

mod fast_path {
    use super::*;
    use proptest::prelude::*;

    /// Expressions the fast path takes, over the fields of [`record`].
    const EXPRESSIONS: &[&str] = &[
        "record.a",
        "record['b']",
        "record.n.c",
        "record.a | trim | lower",
        "record.b | upper",
        "record.a ~ ' ' ~ record.b",
        "record.a ~ record.i ~ 'x'",
        "record.a | replace(' ', '')",
        "record.b | replace('ab', 'c')",
        "record.a | int",
        "record.i | int",
        "record.a == 'x'",
        "record.a != record.b",
        "record.i == 3",
        "record.t != true",
        "'mock'",
        "42",
        "record.missing | lower",
        "record.z ~ 'x'",
    ];

    fn text() -> impl Strategy<Value = Json> {
        prop_oneof![
            "[ a-zA-Z0-9+\\-.,]{0,12}".prop_map(Json::from),
            "\\PC{0,8}".prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Json::from),
            any::<bool>().prop_map(Json::from),
            Just(Json::Null),
            Just(json!(["x", 1])),
            Just(json!({"k": "v"})),
        ]
    }

    fn record() -> impl Strategy<Value = Json> {
        (text(), text(), text(), text(), text(), text()).prop_map(
            |(a, b, c, i, t, z)| json!({"a": a, "b": b, "n": {"c": c}, "i": i, "t": t, "z": z}),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Where the fast path answers, the engine answers the same.
        #[test]
        fn the_fast_path_answers_as_the_engine_does(record in record()) {
            for source in EXPRESSIONS {
                let native = Native::compile(source).unwrap_or_else(|| panic!("{source} has a fast form"));
                if let Some(fast) = native.eval(&record) {
                    prop_assert_eq!(Ok(fast), run(source, record.clone()), "{} on {}", source, record);
                }
            }
        }
    }

    #[test]
    fn everyday_values_take_the_fast_path() {
        let record = json!({"a": "  Ada@Example.COM ", "b": "+49 30 1", "i": 7, "s": "1200", "n": {"c": "x"}});
        let fast = |source: &str| Native::compile(source).and_then(|n| n.eval(&record));
        assert_eq!(
            fast("record.a | trim | lower"),
            Some(json!("ada@example.com"))
        );
        assert_eq!(fast("record.b | replace(' ', '')"), Some(json!("+49301")));
        assert_eq!(fast("record.n.c ~ '-' ~ record.i"), Some(json!("x-7")));
        assert_eq!(fast("record.s | int"), Some(json!(1200)));
        assert_eq!(fast("record.n.c != 'archived'"), Some(json!(true)));
        // What it does not know exactly is left to the engine.
        assert_eq!(fast("record.missing | lower"), None);
        assert_eq!(
            fast("record.b | int"),
            None,
            "a sign and spaces: the engine's rules"
        );
        assert_eq!(fast("record.i == '7'"), None);
        for engine_only in [
            "record.a | title",
            "record.a | replace('a', 'longer')",
            "record.a if record.i else record.b",
            "record.tags | join(',')",
            "record.a + record.b",
            "x.a",
        ] {
            assert_eq!(Native::compile(engine_only), None, "{engine_only}");
        }
    }
}
