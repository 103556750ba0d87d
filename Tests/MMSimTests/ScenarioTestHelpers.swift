// Shared helpers of the scenario tests: run a scenario with the checker on, and the
// ScenarioError a scenario must stop with.
import Testing
import MMSimTestSupport

/// Runs a scenario text with the invariant checker after every statement.
func runCheckedScenario(_ text: String, trace: Bool = false) throws -> ScenarioReport {
    try ScenarioRunner.run(text, file: "t.mmsim", options: ScenarioOptions(trace: trace, checkInvariants: true))
}

/// The ScenarioError `body` throws; records an issue when it throws something else or nothing.
func expectScenarioError(sourceLocation: Testing.SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> ScenarioError? {
    do {
        try body()
    } catch let e as ScenarioError {
        return e
    } catch {
        Issue.record("expected a ScenarioError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
    Issue.record("expected a ScenarioError, got success", sourceLocation: sourceLocation)
    return nil
}
