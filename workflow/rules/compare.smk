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


rule compare_database:
    input:
        denovo="results/{sample}/denovo.tsv",
        search="results/{sample}/search.tsv",
        fasta=search_fasta,
        finetune_split=sample_finetune_split,
    output:
        table="results/{sample}/denovo_vs_database.tsv",
        summary="results/{sample}/denovo_vs_database.json",
        candidates="results/{sample}/denovo_candidates.tsv",
        plot=report(
            "results/{sample}/denovo_vs_database.png",
            caption="../report/database.rst",
            category="De novo against the database",
            labels={"sample": "{sample}"},
        ),
    log:
        "logs/compare_database/{sample}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        fdr=config["search"]["fdr"],
        min_score=config["search"]["candidate_score"],
        finetune_split=finetune_split_option,
    shell:
        "python -m trm compare-database --denovo {input.denovo:q} --search {input.search:q}"
        " --fasta {input.fasta:q} --fdr {params.fdr} --min-score {params.min_score}"
        " --run {wildcards.sample} {params.finetune_split}"
        " --table {output.table:q} --summary-out {output.summary:q}"
        " --candidates {output.candidates:q} --plot {output.plot:q} 2> {log:q}"
