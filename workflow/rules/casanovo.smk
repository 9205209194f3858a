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
