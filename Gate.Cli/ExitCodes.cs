using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Governance;

namespace Gate.Cli;

/// <summary>
/// Exit codes of the gate CLI; part of its public contract for CI pipelines. They are the CLI's mapping of
/// outcomes, not part of any outcome: decision.json and its attestation carry the verdict, never a process status.
/// </summary>
public static class ExitCodes
{
    public const int Approve = 0;
    public const int Reject = 1;
    public const int Inconclusive = 2;
    public const int BadInput = 3;
    public const int InternalError = 4;
    /// <summary>Cancelled by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal's number, as shells report it. No decision is written.</summary>
    public const int Interrupted = 130, Terminated = 143;

    /// <summary><c>gate check</c>'s status for a decision: 0 APPROVE, 1 REJECT, 2 INCONCLUSIVE.</summary>
    public static int For(GateDecision decision) => decision switch
    {
        GateDecision.Approve => Approve,
        GateDecision.Reject => Reject,
        _ => Inconclusive,
    };

    /// <summary>What <c>gate check --help</c> says about them.</summary>
    public const string CheckHelp = "Exit codes: 0 APPROVE, 1 REJECT, 2 INCONCLUSIVE, 3 bad input or usage, 4 internal error.";

    /// <summary><c>gate verify</c>: 0 verified, else the code of the most fundamental failure (<see cref="VerifyFailure"/>'s order).</summary>
    public static class Verify
    {
        public const int Verified = 0, BadSignature = 10, ModelMismatch = 11, PolicyMismatch = 12, EvidenceMismatch = 13, DecisionNotAccepted = 14;

        public static int For(VerifyFailure? failure) => failure switch
        {
            null => Verified,
            VerifyFailure.BadSignature => BadSignature,
            VerifyFailure.ModelMismatch => ModelMismatch,
            VerifyFailure.PolicyMismatch => PolicyMismatch,
            VerifyFailure.EvidenceMismatch => EvidenceMismatch,
            VerifyFailure.DecisionNotAccepted => DecisionNotAccepted,
            _ => throw new ArgumentOutOfRangeException(nameof(failure), failure, "a verification failure without an exit code"),
        };
    }

    /// <summary><c>gate policy impact</c>: 0 nothing changes, 1 some decision flips, 2 some need a re-run to tell.</summary>
    public static class Impact
    {
        public const int NoChange = 0, SomeFlip = 1, SomeNeedRerun = 2;

        public static int For(ImpactOutcome outcome) => outcome switch
        {
            ImpactOutcome.NoChange => NoChange,
            ImpactOutcome.SomeFlip => SomeFlip,
            ImpactOutcome.SomeNeedRerun => SomeNeedRerun,
            _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome, "an impact outcome without an exit code"),
        };
    }
}
