rule casanovo_baseline:
    input:
        synthetic="results/synthetic/{instrument}",
        instrument=instrument_file,
    output:
        checkpoint="results/casanovo/{instrument}/baseline.ckpt",
        summary="results/casanovo/{instrument}/baseline.json",
    log:
        "logs/casanovo_baseline/{instrument}.log",
    benchmark:
        "logs/benchmarks/casanovo_baseline/{instrument}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        runtime=1440,
    params:
        executable=casanovo_executable(),
        budget=casanovo_budget(),
        # MGF files and Casanovo's checkpoints; a retried job resumes from the newest one
        # (not an output: Snakemake keeps it when a job fails).
        work_dir="results/casanovo/{instrument}/baseline.work",
        dim_model=config["casanovo"]["dim_model"],
        n_head=config["casanovo"]["n_head"],
        dim_feedforward=config["casanovo"]["dim_feedforward"],
        n_layers=config["casanovo"]["n_layers"],
        batch_size=config["casanovo"]["batch_size"],
        validation_spectra=config["casanovo"]["validation_spectra"],
    shell:
        "python -m trm --attempts-log logs/casanovo_baseline/{wildcards.instrument}.attempts.log"
        " casanovo-train --data-dir {input.synthetic:q}"
        " --instrument {input.instrument:q} --executable {params.executable:q}"
        " --checkpoint {output.checkpoint:q} --summary {output.summary:q}"
        " --work-dir {params.work_dir:q} --max-spectra {params.budget}"
        " --dim-model {params.dim_model} --n-head {params.n_head}"
        " --dim-feedforward {params.dim_feedforward} --n-layers {params.n_layers}"
        " --batch-size {params.batch_size}"
        " --max-validation-spectra {params.validation_spectra} --threads {threads} 2> {log:q}"


rule casanovo:
    input:
        spectra="results/mzml/{sample}.mzML",
        checkpoint=casanovo_checkpoint,
        instrument=instrument_file,
    output:
        mztab="results/{sample}/casanovo.mztab",
        results="results/{sample}/casanovo.tsv",
        summary="results/{sample}/casanovo.json",
    log:
        "logs/casanovo/{sample}.log",
    benchmark:
        "logs/benchmarks/casanovo/{sample}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["denovo"]
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        executable=casanovo_executable(),
        work_dir="results/{sample}/casanovo.work",
    shell:
        "python -m trm casanovo-sequence --spectra {input.spectra:q}"
        " --run {wildcards.sample} --checkpoint {input.checkpoint:q}"
        " --instrument {input.instrument:q} --executable {params.executable:q}"
        " --mztab {output.mztab:q} --results {output.results:q}"
        " --summary {output.summary:q} --work-dir {params.work_dir:q}"
        " --threads {threads} 2> {log:q}"


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
