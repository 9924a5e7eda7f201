use super::*;

#[test]
fn every_event_kind_has_a_mapping_and_a_sample() {
    for (kind, events) in samples::every_kind() {
        assert!(
            MAPPINGS.iter().any(|(k, _)| *k == kind),
            "{kind:?} has no OCSF mapping: add a row to MAPPINGS"
        );
        assert!(!events.is_empty(), "{kind:?} has no sample event in ocsf/samples.rs");
        for event in events {
            let (class_uid, record) = record(&event);
            assert_ne!(class_uid, 0, "{kind:?} fell back to Base Event: {record}");
            assert_eq!(record["metadata"]["sequence"], event.seq);
            assert_eq!(record["unmapped"]["instance"], event.instance.as_str());
            let type_uid = record["type_uid"].as_u64().expect("type_uid");
            assert_eq!(type_uid / 100, u64::from(class_uid));
        }
    }
}

#[test]
fn the_issue_s_classes() {
    let class_of = |kind: EventKind| {
        let events = samples::every_kind().into_iter().find(|(k, _)| *k == kind).expect("kind").1;
        events.iter().map(|e| record(e).0).collect::<Vec<_>>()
    };
    assert_eq!(class_of(EventKind::ProcessExec), vec![1007]);
    assert_eq!(class_of(EventKind::ModelFileOpened), vec![1001, 1001]);
    assert_eq!(class_of(EventKind::ModelFileMapped), vec![1004]);
    assert_eq!(class_of(EventKind::ListenerOpened), vec![4001, 4001]);
    assert_eq!(class_of(EventKind::ModelAnalyzed), vec![1001, 2004]);
}

#[test]
fn opened_models_carry_hashes_and_ai_model() {
    let event =
        &samples::every_kind().into_iter().find(|(k, _)| *k == EventKind::ModelFileOpened).expect("kind").1
            [0];
    let (_, record) = record(event);
    assert_eq!(record["activity_id"], 14);
    assert_eq!(record["file"]["hashes"][0]["algorithm_id"], 3);
    assert_eq!(record["unmapped"]["ai_model"]["name"], "Llama 3.2 3B Instruct");
    assert_eq!(record["unmapped"]["ai_model"]["ai_provider"], "Ollama");
    assert_eq!(record["actor"]["process"]["pid"], 4242);
}
