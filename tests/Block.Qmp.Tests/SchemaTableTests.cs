using System.Text.Json.Nodes;
using Block.Drivers.Null;
using Block.Events;
using Block.Graph;
using Block.Qapi;
using Block.Qmp.Schema;

namespace Block.Qmp.Tests;

/// <summary>The generated table: complete, every reference resolved, and in agreement with the library's records.</summary>
public sealed class SchemaTableTests
{
    private static readonly QapiSchema Schema = QapiSchema.Instance;

    private static readonly string[] BlockCoreCommands =
    [
        "query-block", "query-blockstats", "query-block-jobs", "block_passwd", "block_resize", "blockdev-snapshot-sync",
        "blockdev-snapshot", "change-backing-file", "block-commit", "drive-backup", "blockdev-backup",
        "query-named-block-nodes", "drive-mirror", "block-dirty-bitmap-add", "block-dirty-bitmap-remove",
        "block-dirty-bitmap-clear", "blockdev-mirror", "block_set_io_throttle", "block-stream", "block-job-set-speed",
        "block-job-cancel", "block-job-pause", "block-job-resume", "block-job-complete", "blockdev-add", "x-blockdev-del",
        "blockdev-open-tray", "blockdev-close-tray", "x-blockdev-remove-medium", "x-blockdev-insert-medium",
        "blockdev-change-medium", "block-set-write-threshold", "x-blockdev-change",
    ];

    [Fact]
    public void The_table_has_the_33_block_core_commands_then_the_media_and_run_state_commands_the_qmp_core_nbd_server_exports_and_replication_in_schema_order()
    {
        string[] devices = ["blockdev-remove-medium", "blockdev-insert-medium", "eject", "cont"];
        string[] core = ["qmp_capabilities", "query-version", "query-commands", "quit", "query-qmp-schema"];
        string[] nbd = ["nbd-server-start", "nbd-server-add", "nbd-server-remove", "nbd-server-stop",
            "block-export-add", "block-export-del", "query-block-exports"];
        string[] replication = ["xen-set-replication", "query-xen-replication-status", "xen-colo-do-checkpoint"];
        Assert.Equal([.. BlockCoreCommands, .. devices, .. core, .. nbd, .. replication], Schema.Commands.Select(c => c.Name));
        Assert.Equal(
            ["BLOCK_IMAGE_CORRUPTED", "BLOCK_IO_ERROR", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR",
             "BLOCK_JOB_READY", "BLOCK_WRITE_THRESHOLD", "DEVICE_TRAY_MOVED", "QUORUM_FAILURE", "QUORUM_REPORT_BAD", "STOP", "RESUME", "BLOCK_EXPORT_DELETED"],
            Schema.Events.Select(e => e.Name));
    }

    [Fact]
    public void Command_flags_are_the_schemas()
    {
        Assert.Equal(["drive-backup", "blockdev-backup", "drive-mirror", "block_set_io_throttle", "blockdev-add", "block-export-add"],
            Schema.Commands.Where(c => c.Boxed).Select(c => c.Name));
        Assert.Equal(["query-qmp-schema"], Schema.Commands.Where(c => !c.Gen).Select(c => c.Name));
        Assert.All(Schema.Commands, c => Assert.True(c.SuccessResponse));
        Assert.Null(Schema.FindCommand("block_resize")!.ReturnType);
        Assert.Equal("[BlockInfo]", Schema.FindCommand("query-block")!.ReturnType!.Name);
        Assert.Equal("BlockdevSnapshotSync", Schema.FindCommand("blockdev-snapshot-sync")!.ArgumentType!.Name);
        Assert.True(Schema.FindCommand("block_resize")!.ArgumentType!.IsImplicit);
    }

    [Fact]
    public void Every_type_the_table_reaches_is_defined_and_every_union_and_alternate_is_well_formed()
    {
        var seen = new HashSet<QapiType>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<QapiType>(Schema.Types);
        foreach (var c in Schema.Commands)
        {
            if (c.ArgumentType != null)
                pending.Push(c.ArgumentType);
            if (c.ReturnType != null)
                pending.Push(c.ReturnType);
        }
        foreach (var e in Schema.Events.Where(e => e.DataType != null))
            pending.Push(e.DataType!);

        while (pending.TryPop(out var type))
        {
            if (!seen.Add(type))
                continue;
            Assert.Same(type, Schema.FindType(type.Name));
            switch (type)
            {
                case QapiArrayType array:
                    pending.Push(array.ElementType);
                    break;
                case QapiObjectType obj:
                    Assert.Equal(obj.Members.Count, obj.Members.Select(m => m.Name).Distinct().Count());
                    if (obj.Base != null)
                        Assert.Equal(obj.Base.Members, obj.Members.Take(obj.Base.Members.Count));
                    foreach (var m in obj.Members)
                    {
                        Assert.Same(m, obj.FindMember(m.Name));
                        pending.Push(m.Type);
                    }
                    if (obj.IsUnion)
                    {
                        var tag = obj.FindMember(obj.Tag!)!;
                        Assert.False(tag.Optional);
                        Assert.Same(obj.TagType, tag.Type);
                        foreach (var v in obj.Variants)
                        {
                            Assert.Contains(v.Case, obj.TagType!.Values);
                            Assert.False(v.Type.IsUnion);
                            pending.Push(v.Type);
                        }
                    }
                    break;
                case QapiAlternateType alternate:
                    Assert.True(alternate.Alternatives.Count >= 2);
                    Assert.Equal(alternate.Alternatives.Count, alternate.Alternatives.Select(a => a.Type.MetaType == QapiMetaType.Builtin ? a.Type.Name : a.Type.MetaType.ToString()).Distinct().Count());
                    foreach (var a in alternate.Alternatives)
                        pending.Push(a.Type);
                    break;
                case QapiEnumType e:
                    Assert.NotEmpty(e.Values);
                    Assert.Equal(e.Values.Count, e.Values.Distinct().Count());
                    break;
            }
        }
        Assert.Equal(Schema.Types.Count, Schema.Types.Select(t => t.Name).Distinct().Count());
    }

    [Fact]
    public void Simple_unions_are_desugared_as_qemu_models_them()
    {
        var info = (QapiObjectType)Schema.FindType("ImageInfoSpecific")!;
        Assert.Equal("type", info.Tag);
        Assert.Equal(["qcow2", "vmdk", "luks"], info.TagType!.Values);
        var luks = info.FindVariant("luks")!.Type;
        Assert.True(luks.IsImplicit);
        var data = Assert.Single(luks.Members);
        Assert.Equal("data", data.Name);
        Assert.Equal("QCryptoBlockInfoLUKS", data.Type.Name);
    }

    [Fact]
    public void The_supplement_replaces_block_dirty_bitmap_add_in_place_with_persistent_and_disabled()
    {
        var add = (QapiObjectType)Schema.FindType("BlockDirtyBitmapAdd")!;
        Assert.Equal(["node", "name", "granularity", "persistent", "disabled"], add.Members.Select(m => m.Name));
        // Where block-core defines it: right after BlockDirtyBitmap, not at the end with the supplement's own types.
        var types = Schema.Types.ToList();
        Assert.Equal(types.IndexOf(Schema.FindType("BlockDirtyBitmap")!) + 1, types.IndexOf(add));
    }

    [Fact]
    public void The_librarys_events_carry_the_data_the_schema_defines()
    {
        BlockEvent[] events =
        [
            new BlockWriteThresholdEvent("n0", 8560, 65536),
            new BlockIoErrorEvent("d0", "n0", IoOperationType.Write, BlockErrorAction.Stop, true, "No space left on device"),
            new BlockIoErrorEvent("", "n1", IoOperationType.Read, BlockErrorAction.Report, null, "Input/output error"),
            new BlockImageCorruptedEvent("d0", "n0", "L2 table offset unaligned", 65536, 65536, true),
            new BlockImageCorruptedEvent("", null, "bad", null, null, false),
        ];
        foreach (var e in events)
        {
            var ev = Schema.FindEvent(e.Name);
            Assert.NotNull(ev);
            QapiArgumentValidator.ValidateValue(ev!.DataType!, e.ToData(), "data");
        }
    }

    [Fact]
    public async Task The_librarys_query_records_have_the_schemas_members_and_types()
    {
        await using var graph = new BlockGraph();
        await graph.OpenBackendAsync(new BlockdevOptionsNull { NodeName = "n0", Size = 1 << 20 }, new BlockBackendOptions { Name = "d0" });
        Check("[BlockInfo]", QemuJson.ToNode(graph.QueryBlock(), QapiJsonContext.Default.IReadOnlyListBlockInfo));
        Check("[BlockStats]", QemuJson.ToNode(graph.QueryBlockStats(), QapiJsonContext.Default.IReadOnlyListBlockStats));
        Check("[BlockStats]", QemuJson.ToNode(graph.QueryBlockStats(queryNodes: true), QapiJsonContext.Default.IReadOnlyListBlockStats));
        Check("[BlockDeviceInfo]", QemuJson.ToNode(graph.QueryNamedBlockNodes(), QapiJsonContext.Default.IReadOnlyListBlockDeviceInfo));

        static void Check(string type, JsonNode? value) =>
            QapiArgumentValidator.ValidateValue(Schema.FindType(type)!, value, "return");
    }
}
