using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>BlockdevDiscardOptions</c>: whether discard requests reach the image.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockdevDiscardOptions>))]
public enum BlockdevDiscardOptions
{
    /// <summary>Discard requests are ignored (the default for <c>blockdev-add</c>).</summary>
    [JsonStringEnumMemberName("ignore")] Ignore,
    /// <summary>Discard requests are passed down (punch holes, free clusters).</summary>
    [JsonStringEnumMemberName("unmap")] Unmap,
}

/// <summary>QAPI <c>BlockdevDetectZeroesOptions</c>: whether writes of zeroes become write-zeroes requests.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockdevDetectZeroesOptions>))]
public enum BlockdevDetectZeroesOptions
{
    /// <summary>No detection.</summary>
    [JsonStringEnumMemberName("off")] Off,
    /// <summary>All-zero writes become write-zeroes requests.</summary>
    [JsonStringEnumMemberName("on")] On,
    /// <summary>As <see cref="On"/>, and the space may be unmapped when <c>discard=unmap</c>.</summary>
    [JsonStringEnumMemberName("unmap")] Unmap,
}

/// <summary>QAPI <c>BlockdevAioOptions</c> with QEMU 5.0's <c>io_uring</c> and Block's <c>inline</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockdevAioOptions>))]
public enum BlockdevAioOptions
{
    /// <summary>A pool of dedicated threads doing blocking positional I/O.</summary>
    [JsonStringEnumMemberName("threads")] Threads,
    /// <summary>Kernel asynchronous I/O; in Block, io_uring.</summary>
    [JsonStringEnumMemberName("native")] Native,
    /// <summary>io_uring (QEMU 5.0).</summary>
    [JsonStringEnumMemberName("io_uring")] IoUring,
    /// <summary>Blocking calls on the caller's thread (Block only).</summary>
    [JsonStringEnumMemberName("inline")] Inline,
}

/// <summary>QAPI <c>OnOffAuto</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OnOffAuto>))]
public enum OnOffAuto
{
    /// <summary>Decide from the environment.</summary>
    [JsonStringEnumMemberName("auto")] Auto,
    /// <summary>Enabled.</summary>
    [JsonStringEnumMemberName("on")] On,
    /// <summary>Disabled.</summary>
    [JsonStringEnumMemberName("off")] Off,
}

/// <summary>QAPI <c>PreallocMode</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PreallocMode>))]
public enum PreallocMode
{
    /// <summary>No preallocation.</summary>
    [JsonStringEnumMemberName("off")] Off,
    /// <summary>Preallocate metadata only (formats with metadata).</summary>
    [JsonStringEnumMemberName("metadata")] Metadata,
    /// <summary>Reserve space with <c>fallocate</c>.</summary>
    [JsonStringEnumMemberName("falloc")] Falloc,
    /// <summary>Write zeroes to every byte.</summary>
    [JsonStringEnumMemberName("full")] Full,
}

/// <summary>QAPI <c>BlockDeviceIoStatus</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockDeviceIoStatus>))]
public enum BlockDeviceIoStatus
{
    /// <summary>No error.</summary>
    [JsonStringEnumMemberName("ok")] Ok,
    /// <summary>An I/O error stopped the device.</summary>
    [JsonStringEnumMemberName("failed")] Failed,
    /// <summary>Lack of space stopped the device.</summary>
    [JsonStringEnumMemberName("nospace")] NoSpace,
}

/// <summary>QAPI <c>BlockdevOnError</c>: what a failed guest request does.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockdevOnError>))]
public enum BlockdevOnError
{
    /// <summary>The error reaches the guest.</summary>
    [JsonStringEnumMemberName("report")] Report,
    /// <summary>The request completes as a success.</summary>
    [JsonStringEnumMemberName("ignore")] Ignore,
    /// <summary>Stop on ENOSPC, report anything else.</summary>
    [JsonStringEnumMemberName("enospc")] Enospc,
    /// <summary>Stop the device; the request is retried when it resumes.</summary>
    [JsonStringEnumMemberName("stop")] Stop,
}

/// <summary>QAPI <c>BlockdevChangeReadOnlyMode</c>: how <c>blockdev-change-medium</c> opens the new medium.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockdevChangeReadOnlyMode>))]
public enum BlockdevChangeReadOnlyMode
{
    /// <summary>As the medium before it (the backend's remembered state).</summary>
    [JsonStringEnumMemberName("retain")] Retain,
    /// <summary>Read-only.</summary>
    [JsonStringEnumMemberName("read-only")] ReadOnly,
    /// <summary>Read-write.</summary>
    [JsonStringEnumMemberName("read-write")] ReadWrite,
}

/// <summary>QAPI <c>BlockErrorAction</c>: what was done about an error (in <c>BLOCK_IO_ERROR</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BlockErrorAction>))]
public enum BlockErrorAction
{
    /// <summary>Ignored.</summary>
    [JsonStringEnumMemberName("ignore")] Ignore,
    /// <summary>Reported to the guest.</summary>
    [JsonStringEnumMemberName("report")] Report,
    /// <summary>The device stopped.</summary>
    [JsonStringEnumMemberName("stop")] Stop,
}

/// <summary>QAPI <c>IoOperationType</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<IoOperationType>))]
public enum IoOperationType
{
    /// <summary>A read.</summary>
    [JsonStringEnumMemberName("read")] Read,
    /// <summary>A write (flushes are reported as writes).</summary>
    [JsonStringEnumMemberName("write")] Write,
}

/// <summary>QAPI <c>DirtyBitmapStatus</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DirtyBitmapStatus>))]
public enum DirtyBitmapStatus
{
    /// <summary>Tracking writes.</summary>
    [JsonStringEnumMemberName("active")] Active,
    /// <summary>Not tracking writes.</summary>
    [JsonStringEnumMemberName("disabled")] Disabled,
    /// <summary>A successor holds new writes while a job uses this bitmap.</summary>
    [JsonStringEnumMemberName("frozen")] Frozen,
}

/// <summary>QAPI <c>NewImageMode</c>: whether an external snapshot creates its overlay file or opens one.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NewImageMode>))]
public enum NewImageMode
{
    /// <summary>Open the file as it is; its header (backing file included) is left alone.</summary>
    [JsonStringEnumMemberName("existing")] Existing,
    /// <summary>Create the file, with the old image's file name as its backing file (the default).</summary>
    [JsonStringEnumMemberName("absolute-paths")] AbsolutePaths,
}

/// <summary>QAPI <c>QuorumReadPattern</c>: how a quorum node serves reads.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<QuorumReadPattern>))]
public enum QuorumReadPattern
{
    /// <summary>Read every child and vote on the data.</summary>
    [JsonStringEnumMemberName("quorum")] Quorum,
    /// <summary>Read the children one after another, in order, until one succeeds; no vote.</summary>
    [JsonStringEnumMemberName("fifo")] Fifo,
}

/// <summary>QAPI <c>QuorumOpType</c>: the kind of request a <c>QUORUM_REPORT_BAD</c> event is about.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<QuorumOpType>))]
public enum QuorumOpType
{
    /// <summary>A read.</summary>
    [JsonStringEnumMemberName("read")] Read,
    /// <summary>A write (zero writes included).</summary>
    [JsonStringEnumMemberName("write")] Write,
    /// <summary>A flush.</summary>
    [JsonStringEnumMemberName("flush")] Flush,
}
