//! The chaos suite at small sizes (`modal_tests::chaos`; `cargo xtask chaos` runs it full): real
//! servers, workers, containers and clients killed, restarted, cut off and sent garbage; no
//! input may be lost, run more often than `1 + retries`, or answered twice.

use modal_tests::chaos::{self, Exes, Sizes};

#[test]
fn faults_cost_retries_never_inputs_or_results() {
    let exes = Exes {
        modal: env!("CARGO_BIN_EXE_modal").into(),
        chaos: env!("CARGO_BIN_EXE_chaos").into(),
    };
    let sizes = Sizes::quick();
    let rows = chaos::run_suite(&exes, &sizes);
    let table = chaos::table(&rows);
    eprintln!("{table}");
    assert_eq!(
        rows.len(),
        6 + usize::from(sizes.postgres.is_some()),
        "every scenario ran:\n{table}"
    );
    for row in &rows {
        assert!(
            row.accepted > 0,
            "{}: nothing was accepted\n{table}",
            row.scenario
        );
        assert_eq!(row.lost, 0, "{}: inputs lost\n{table}", row.scenario);
        assert_eq!(
            row.ran_too_often, 0,
            "{}: inputs ran more than 1 + retries times\n{table}",
            row.scenario
        );
        assert_eq!(
            row.duplicates, 0,
            "{}: results delivered twice\n{table}",
            row.scenario
        );
        assert_eq!(row.failed, 0, "{}: inputs failed\n{table}", row.scenario);
    }
}
