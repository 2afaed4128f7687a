namespace Block.Jobs;

/// <summary>
/// A job's state in QEMU 7.2's job state machine (QAPI <c>JobStatus</c>, not in the 2.9 schema); it decides which
/// commands a job accepts ("Job 'x' in state 'y' cannot accept command verb 'z'").
/// </summary>
public enum JobStatus
{
    /// <summary>Made, not started.</summary>
    Created,
    /// <summary>Working.</summary>
    Running,
    /// <summary>Paused while running.</summary>
    Paused,
    /// <summary>Ready to be completed (mirror, active commit), still working.</summary>
    Ready,
    /// <summary>Paused while ready.</summary>
    Standby,
    /// <summary>Done working; its graph changes are being made.</summary>
    Pending,
    /// <summary>Failed or cancelled; its changes are being undone.</summary>
    Aborting,
    /// <summary>Finished and gone from the job list.</summary>
    Concluded,
}

/// <summary>The commands a job may be given, as QEMU 7.2 names them in its state errors.</summary>
internal enum JobVerb
{
    Cancel,
    Pause,
    Resume,
    SetSpeed,
    Complete,
}
