"""Evaluation and reporting of youth care in Dutch secondary schools.

Subpackages by stage of the data flow, imports pointing one way (tests/test_architecture.py):

    registry, labels  definitions: the indicators, the Dutch words readers read
    params            the one schema of every parameter, validated before anything runs
    data              data model, reading, validation, import, synthetic data, CBS context
    analysis          indicators, design, estimators, inference, robustness, costs
    report            disclosure control, Dutch tables, sentences and figures, rendering, audit
    run               one report's pipeline; every report (plan, manifest, executors)
    national          all regions side by side and the national overview
    cli               the `evaluation` command
"""

__version__ = "0.1.0"
