using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Block.Qmp.Schema;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>
/// Bad arguments sent to qemu-storage-daemon 7.2 and checked by our schema must fail with the same text, and the
/// arguments it accepts (failing later, for a node that does not exist) we must accept. Only commands whose
/// arguments are the same in 7.2 and in our 2.9 schema are used.
/// </summary>
public sealed partial class ValidationOracleTests(ValidationOracleTests.Daemon daemon) : IClassFixture<ValidationOracleTests.Daemon>
{
    /// <summary>One daemon for the whole table: every case fails before it changes anything.</summary>
    public sealed class Daemon : IAsyncLifetime
    {
        public QemuStorageDaemon Qsd { get; private set; } = null!;

        public async Task InitializeAsync() => Qsd = await QemuStorageDaemon.StartAsync();

        public async Task DisposeAsync() => await Qsd.DisposeAsync();
    }

    /// <summary>
    /// (our command, QSD's command, arguments). Our command "type:T" checks the QSD command's <c>addr</c> argument
    /// against our type T, for schema shapes no common command has (nbd-server-start's <c>addr</c> is 7.2's
    /// SocketAddressLegacy, which is 2.9's SocketAddress).
    /// </summary>
    public static TheoryData<string, string, string> Cases => new()
    {
        // Missing, unexpected, order.
        { "block_resize", "block_resize", """{"node-name": "q0"}""" },
        { "block_resize", "block_resize", """{}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 1, "zz": 1}""" },
        { "block_resize", "block_resize", """{"zz": 1}""" },
        { "block_resize", "block_resize", """{"zz": 1, "size": "x"}""" },
        { "block_resize", "block_resize", """{"size": "x", "node-name": 1}""" },
        { "query-block", "query-block", """{"x": 1}""" },
        { "query-named-block-nodes", "query-named-block-nodes", """{"x": 1}""" },
        { "query-version", "query-version", """{"x": 1}""" },
        { "query-commands", "query-commands", """{"x": 1}""" },
        { "query-qmp-schema", "query-qmp-schema", """{"x": 1}""" },
        { "qmp_capabilities", "qmp_capabilities", """{"x": 1}""" },
        { "change-backing-file", "change-backing-file", """{"device": "d", "backing-file": "b"}""" },
        { "blockdev-snapshot", "blockdev-snapshot", """{"node": "a"}""" },
        { "x-blockdev-del", "blockdev-del", """{}""" },
        { "x-blockdev-del", "blockdev-del", """{"node-name": 1}""" },
        { "x-blockdev-change", "x-blockdev-change", """{"child": "c"}""" },
        { "block-dirty-bitmap-remove", "block-dirty-bitmap-remove", """{"node": "a"}""" },
        { "block-dirty-bitmap-clear", "block-dirty-bitmap-clear", """{"node": "a", "name": "b", "granularity": 1}""" },
        // int.
        { "block_resize", "block_resize", """{"node-name": "q0", "size": "x"}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": true}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": {}}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": []}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 1.5}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 1.0}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 1e3}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": null}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 9223372036854775808}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 18446744073709551616}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": -9223372036854775809}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": -9223372036854775808}""" },
        { "block_resize", "block_resize", """{"node-name": "q0", "size": 9223372036854775807}""" },
        // str and null.
        { "block_resize", "block_resize", """{"node-name": 1, "size": 1}""" },
        { "block_resize", "block_resize", """{"node-name": null, "size": 1}""" },
        { "block_resize", "block_resize", """{"device": [], "size": 1}""" },
        // bool.
        { "query-blockstats", "query-blockstats", """{"query-nodes": "x"}""" },
        { "query-blockstats", "query-blockstats", """{"query-nodes": 1}""" },
        { "query-blockstats", "query-blockstats", """{"query-nodes": true}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "persistent": "x"}""" },
        // uint32 and uint64.
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": -1}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": 4294967296}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": -4294967297}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": 4294967295}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": "x"}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": 1.5}""" },
        { "block-dirty-bitmap-add", "block-dirty-bitmap-add", """{"node": "a", "granularity": 512}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": -1}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": 18446744073709551615}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": 18446744073709551616}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": "x"}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": 1.5}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"node-name": "a", "write-threshold": false}""" },
        { "block-set-write-threshold", "block-set-write-threshold", """{"write-threshold": 1}""" },
        // Enums.
        { "blockdev-snapshot-sync", "blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": "xyz"}""" },
        { "blockdev-snapshot-sync", "blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": 1}""" },
        { "blockdev-snapshot-sync", "blockdev-snapshot-sync", """{"node-name": "a", "mode": "existing"}""" },
        // Flat unions and alternates (blockdev-add's BlockdevOptions, where 2.9 and 7.2 agree).
        { "blockdev-add", "blockdev-add", """{}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "zz"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw", "node-name": 1, "file": "x"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw", "file": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw", "file": {"driver": "file"}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw", "file": {"driver": "zz"}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "raw", "file": {"driver": "file", "filename": "/x", "zz": 1}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "file", "filename": "/x", "aio": "zz"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "detect-zeroes": "zz"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "cache": {"direct": 1}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "cache": "x"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "read-only": "x"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "size": "x"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "null-co", "latency-ns": 1.5}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "qcow2", "file": "x", "overlap-check": "zz"}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "qcow2", "file": "x", "overlap-check": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "qcow2", "file": "x", "overlap-check": {"template": "zz"}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "qcow2", "file": "x", "overlap-check": {"main-header": "zz"}}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "quorum", "children": [1], "vote-threshold": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "quorum", "children": "a", "vote-threshold": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "quorum", "children": ["a", {"driver": "zz"}], "vote-threshold": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "quorum", "children": ["a", {"driver": "file"}], "vote-threshold": 1}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "quorum", "children": ["a"]}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "blkdebug", "image": "i", "inject-error": [{"event": "zz"}]}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "blkdebug", "image": "i", "inject-error": [{"event": "l1_update", "state": "x"}]}""" },
        { "blockdev-add", "blockdev-add", """{"driver": "blkdebug", "image": "i", "set-state": [{"event": "l1_update", "new_state": "x"}]}""" },
        // A simple union ({"type": …, "data": …}) and uint16.
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet"}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "xx"}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"data": {}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": 1}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "a"}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "a", "port": 1}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "a", "port": "1", "to": 70000}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "a", "port": "1", "to": -1}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "inet", "data": {"host": "a", "port": "1", "ipv4": "x"}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "unix", "data": {"path": "/x", "zz": 1}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "unix", "data": {"path": "/x"}, "zz": 1}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": {"type": "fd", "data": {"str": 1}}}""" },
        { "type:SocketAddress", "nbd-server-start", """{"addr": "x"}""" },
    };

    [GeneratedRegex(@"^(Parameter '[^']*' (is missing|is unexpected|expects .+|does not accept value '.*')|Invalid parameter type for '[^']*', expected: .+)$")]
    private static partial Regex ValidationText();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Arguments_fail_with_the_text_qemu_storage_daemon_gives_or_pass_as_there(string ours, string theirs, string arguments)
    {
        var args = JsonNode.Parse(arguments)!.AsObject();
        var reply = await daemon.Qsd.ExecuteAsync(theirs, args);
        string? qemuDesc = (string?)reply["error"]?["desc"];
        bool qemuRefusedArguments = qemuDesc != null && ValidationText().IsMatch(qemuDesc);

        string? ourDesc = null;
        try
        {
            if (ours.StartsWith("type:", StringComparison.Ordinal))
                QapiArgumentValidator.ValidateValue(QapiSchema.Instance.FindType(ours[5..])!, args["addr"], "addr");
            else
                QapiSchema.Instance.FindCommand(ours)!.ValidateArguments(args);
        }
        catch (BlockOptionsException e)
        {
            ourDesc = e.Message;
        }

        if (qemuRefusedArguments)
            Assert.Equal(qemuDesc, ourDesc);
        else
            Assert.True(ourDesc is null, $"QSD accepted the arguments (reply {reply.ToJsonString()}) but we said: {ourDesc}");
    }
}
