namespace Block.Throttle;

/// <summary>
/// The throttle groups of a graph, by name: groups made by <c>--object throttle-group</c> and groups that backends
/// join by name (<c>block_set_io_throttle</c>'s <c>group</c>, <c>throttling.group</c>, else the device's name).
/// </summary>
/// <remarks>
/// One namespace serves both, as in QEMU, so a backend may join a group an object made. A group made for a backend
/// lives while it has members; a group an object made lives until the graph does.
/// </remarks>
public sealed class ThrottleGroupRegistry
{
    private readonly Dictionary<string, ThrottleGroup> _groups = new(StringComparer.Ordinal);
    private readonly HashSet<string> _objects = new(StringComparer.Ordinal);

    /// <summary>A registry whose groups are timed by <paramref name="time"/>.</summary>
    public ThrottleGroupRegistry(TimeProvider? time = null) => Time = time ?? TimeProvider.System;

    /// <summary>The clock and timers of every group.</summary>
    public TimeProvider Time { get; }

    /// <summary>The group named <paramref name="name"/>, or null.</summary>
    public ThrottleGroup? Find(string name)
    {
        lock (_groups)
            return _groups.GetValueOrDefault(name);
    }

    /// <summary>Whether an object (<c>--object throttle-group</c>) made the group named <paramref name="name"/>.</summary>
    public bool IsObject(string name)
    {
        lock (_groups)
            return _objects.Contains(name);
    }

    /// <summary>Makes a group as <c>--object throttle-group,id=…</c> does.</summary>
    /// <exception cref="BlockOptionsException">The limits break QEMU's rules, or the name is taken.</exception>
    public ThrottleGroup AddObject(string name, ThrottleConfig config)
    {
        config.Validate();
        lock (_groups)
        {
            if (_groups.ContainsKey(name))
                throw new BlockOptionsException("A group with this name already exists");
            var group = new ThrottleGroup(name, config, Time);
            _groups.Add(name, group);
            _objects.Add(name);
            return group;
        }
    }

    /// <summary>Joins the group named <paramref name="name"/>, making it (without limits) if it does not exist.</summary>
    public ThrottleGroupMember Join(string name, string? description = null)
    {
        lock (_groups)
        {
            if (!_groups.TryGetValue(name, out var group))
            {
                group = new ThrottleGroup(name, ThrottleConfig.Unlimited, Time);
                _groups.Add(name, group);
            }
            return group.Join(description);
        }
    }

    /// <summary>Leaves <paramref name="member"/>'s group, removing the group when it was made for backends and is now empty.</summary>
    public void Leave(ThrottleGroupMember member)
    {
        member.Dispose();
        lock (_groups)
        {
            var group = member.Group;
            if (group.Members.Count == 0 && !_objects.Contains(group.Name) && _groups.GetValueOrDefault(group.Name) == group)
                _groups.Remove(group.Name);
        }
    }
}
