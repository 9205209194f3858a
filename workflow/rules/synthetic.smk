rule peptide_mix:
    input:
        labels=noise_fit_labels,
        instrument=instrument_file,
    output:
        "results/peptide_mix/{instrument}.yaml",
    log:
        "logs/peptide_mix/{instrument}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        fallback=peptide_mix_fallback_option,
    shell:
        "python -m trm peptide-mix --labels {input.labels:q} --instrument {input.instrument:q}"
        " --out {output:q} {params.fallback} 2> {log:q}"


rule synthetic:
    input:
        fasta=synthetic_fastas(),
        instrument=instrument_file,
        mix=synthetic_peptide_mix,
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
        mix=peptide_mix_option,
    shell:
        "python -m trm synthetic --fasta {input.fasta:q} --instrument {input.instrument:q}"
        " --ms2pip-model-dir {params.model_dir:q} --out {output:q}"
        " --n-spectra {params.n_spectra} --seed {params.seed} --threads {threads}"
        " {params.mix} 2> {log:q}"
