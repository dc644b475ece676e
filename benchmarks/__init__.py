"""The load benchmark as a package: data generation (`data`, `files`), contenders
(`contenders/`), the harness (`harness`, `cli`, `server`, `moto_bucket`), the numbers
(`analysis`, `targets`) and the report (`report`). Every use of the pipeline's own code is in
`project`. Run `python -m benchmarks --help`; see benchmarks/README.md."""
