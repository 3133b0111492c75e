# whisperbench study DAG. Logic lives in src/whisperbench; rules only wire scripts/ to paths.
configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/mixed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.report.output,
