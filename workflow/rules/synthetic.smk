rule synthetic:
    input:
        fasta=synthetic_fastas(),
        instrument=instrument_file,
    output:
        directory("results/synthetic/{instrument}"),
    log:
        "logs/synthetic/{instrument}.log",
    benchmark:
        "logs/benchmarks/synthetic/{instrument}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["synthetic"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        n_spectra=config["synthetic"]["n_spectra"],
        seed=config["synthetic"]["seed"],
        model_dir=project_path(config["synthetic"]["ms2pip_model_dir"]),
    shell:
        "python -m trm synthetic --fasta {input.fasta:q} --instrument {input.instrument:q}"
        " --ms2pip-model-dir {params.model_dir:q} --out {output:q}"
        " --n-spectra {params.n_spectra} --seed {params.seed} --threads {threads}"
        " 2> {log:q}"
