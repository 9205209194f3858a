rule compare:
    input:
        unpack(comparison_inputs),
    output:
        table="results/{sample}/comparison.tsv",
        summary="results/{sample}/comparison.json",
        plot=report(
            "results/{sample}/comparison.png",
            caption="../report/comparison.rst",
            category="Comparison with Casanovo",
            labels={"sample": "{sample}"},
        ),
    log:
        "logs/compare/{sample}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        labels=labels_option,
        finetune_split=finetune_split_option,
    shell:
        "python -m trm compare --trm-denovo {input.denovo:q}"
        " --trm-unsequenced {input.unsequenced:q} --trm-timing {input.trm_timing:q}"
        " --casanovo {input.casanovo:q} --casanovo-timing {input.casanovo_timing:q}"
        " --instrument {input.instrument:q}"
        " {params.labels} {params.finetune_split}"
        " --table {output.table:q} --summary-out {output.summary:q}"
        " --plot {output.plot:q} 2> {log:q}"


rule compare_samples:
    input:
        expand("results/{sample}/comparison.json", sample=samples.index),
    output:
        report(
            "results/comparison_summary.tsv",
            caption="../report/summary.rst",
            category="Comparison with Casanovo",
        ),
    log:
        "logs/compare_samples.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        names=list(samples.index),
    shell:
        "python -m trm compare-samples --summaries {input:q} --names {params.names}"
        " --out {output:q} 2> {log:q}"
