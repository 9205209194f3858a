


rule calibrate:
    input:
        model=calibration_model,
        synthetic="results/synthetic/{instrument}",
        instrument=instrument_file,
        noise=training_noise_model,
        labels=calibration_labels,
    output:
        model="results/models/{instrument}/model.pt",
        report="results/models/{instrument}/calibration.json",
    log:
        "logs/calibrate/{instrument}.log",
    benchmark:
        "logs/benchmarks/calibrate/{instrument}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["denovo"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        max_spectra=config["calibrate"]["max_spectra"],
        beam_size=config["denovo"]["beam_size"],
        halt_threshold=config["denovo"]["halt_threshold"] or "none",
        decoder=decoder_option(),
        refinement_steps=refinement_steps_option,
        spectra=calibration_spectra_option,
        ms2pip_dir=project_path(config["synthetic"]["ms2pip_model_dir"]),
        choice=calibrate_choice_options(),
    shell:
        "python -m trm calibrate --model {input.model:q} {params.spectra}"
        " --instrument {input.instrument:q} --out {output.model:q}"
        " --report {output.report:q} --max-spectra {params.max_spectra}"
        " --beam-size {params.beam_size} --halt-threshold {params.halt_threshold}"
        " {params.refinement_steps} {params.decoder} --threads {threads}"
        " --ms2pip-model-dir {params.ms2pip_dir:q} {params.choice} 2> {log:q}"


rule denovo:
    input:
        unpack(denovo_labels),
        spectra="results/mzml/{sample}.mzML",
        model=sample_model,
        instrument=instrument_file,
    output:
        denovo="results/{sample}/denovo.tsv",
        mztab="results/{sample}/denovo.mztab",
        unsequenced="results/{sample}/unsequenced.tsv",
        timing="results/{sample}/trm_timing.json",
        fdr="results/{sample}/denovo_fdr.json",
    log:
        "logs/denovo/{sample}.log",
    benchmark:
        "logs/benchmarks/denovo/{sample}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["denovo"]
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        batch_size=config["denovo"]["batch_size"],
        beam_size=config["denovo"]["beam_size"],
        halt_threshold=config["denovo"]["halt_threshold"] or "none",
        decoder=decoder_option(),
        refinement_steps=refinement_steps_option,
        labels=denovo_labels_option,
        ms2pip_dir=project_path(config["synthetic"]["ms2pip_model_dir"]),
    shell:
        "python -m trm denovo --spectra {input.spectra:q} --model {input.model:q}"
        " --instrument {input.instrument:q} --run {wildcards.sample}"
        " --denovo {output.denovo:q} --mztab {output.mztab:q}"
        " --unsequenced {output.unsequenced:q} --timing {output.timing:q}"
        " {params.labels} --fdr-report {output.fdr:q}"
        " --batch-size {params.batch_size} --beam-size {params.beam_size}"
        " --halt-threshold {params.halt_threshold} {params.refinement_steps}"
        " {params.decoder} --threads {threads} --ms2pip-model-dir {params.ms2pip_dir:q}"
        " 2> {log:q}"


rule evaluate:
    input:
        denovo="results/{sample}/denovo.tsv",
        unsequenced="results/{sample}/unsequenced.tsv",
        labels="results/labels/{sample}.parquet",
        finetune_split=sample_finetune_split,
    output:
        metrics="results/{sample}/metrics.json",
        plot=report(
            "results/{sample}/metrics.png",
            caption="../report/metrics.rst",
            category="De novo sequencing",
            labels={"sample": "{sample}"},
        ),
    log:
        "logs/evaluate/{sample}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        finetune_split=finetune_split_option,
        empty_labels=empty_labels_option,
    shell:
        "python -m trm evaluate --denovo {input.denovo:q}"
        " --unsequenced {input.unsequenced:q} --labels {input.labels:q}"
        " --run {wildcards.sample} {params.finetune_split} {params.empty_labels}"
        " --metrics {output.metrics:q} --plot {output.plot:q} 2> {log:q}"
