"""`mldoctor fleet`: many per-node reports in, one fleet verdict out.

Layers, each only importing those before it:

    sources     read files, folders, bundles and JSON lines, one document at a time (never all at once)
    node        one report -> a compact NodeSummary (what the aggregate needs; the rest is dropped)
    stragglers, drift, drain
                pure judgements over the summaries (no I/O)
    allreduce   the pure judgement of an all-reduce across the nodes (whole set, pairs, suspects)
    aggregate   the streaming pass (read) and the judgement (judge) that tie them together into a Fleet, and the
                exit code
    output      renderers, one signature each: render(fleet) -> str
    command     the click command (only wiring)

mldoctor stays a per-node program: this package reads what each node wrote and never reaches a node itself. The
engines reach them (`launch`, `slurm`, `ray`, `kubernetes`); what runs on a node is `task` (the check) and
`allreduce_task`, which starts `allreduce_program` (stdlib and torch, injected like the probe) for one rank of the
all-reduce across nodes.
"""
