using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench -- --filter '*'      (see README.md)
BenchmarkSwitcher.FromAssembly(typeof(Block.Bench.RawReadBenchmarks).Assembly).Run(args);
