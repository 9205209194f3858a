rule fit_noise:
    input:
        labels=noise_fit_labels,
        instrument=instrument_file,
    output:
        model="results/noise/{instrument}.yaml",
        plot=report(
            "results/noise/{instrument}.png",
            caption="../report/noise.rst",
            category="Noise model",
            labels={"instrument": "{instrument}"},
        ),
    log:
        "logs/fit_noise/{instrument}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model_dir=project_path(config["synthetic"]["ms2pip_model_dir"]),
        fallback=noise_fallback_option,
    shell:
        "python -m trm fit-noise --labels {input.labels:q} --instrument {input.instrument:q}"
        " --ms2pip-model-dir {params.model_dir:q} --out {output.model:q}"
        " --plot {output.plot:q} {params.fallback} 2> {log:q}"
