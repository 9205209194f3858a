rule pretrain:
    input:
        synthetic="results/synthetic/{instrument}",
        instrument=instrument_file,
        noise=training_noise_model,
        init=pretrain_init(),
    output:
        checkpoint="results/models/{instrument}/pretrained.pt",
        metrics="results/models/{instrument}/metrics.csv",
    log:
        "logs/pretrain/{instrument}.log",
    benchmark:
        "logs/benchmarks/pretrain/{instrument}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=config["pretrain"]["gpus"],
    params:
        launcher=pretrain_launcher(),
        model=config["model"]["size"],
        device="cuda" if config["pretrain"]["gpus"] else "cpu",
        settings=setting_options("pretrain", ("noise", "init", "gpus")),
        noise=noise_model_option,
        init=init_option,
        # Training state outside the declared outputs: a failed or preempted job's retry
        # resumes from it (Snakemake deletes a failed job's outputs, not this folder).
        work_dir="results/models/{instrument}/work",
    shell:
        "{params.launcher} --attempts-log logs/pretrain/{wildcards.instrument}.attempts.log"
        " pretrain --train-dir {input.synthetic:q}/train"
        " --validation-dir {input.synthetic:q}/validation --checkpoint {output.checkpoint:q}"
        " --work-dir {params.work_dir:q}"
        " --metrics {output.metrics:q} --model-config {params.model} {params.settings}"
        " --instrument {input.instrument:q} {params.noise} {params.init}"
        " --device {params.device} --threads {threads} 2> {log:q}"


rule training_plot:
    input:
        "results/models/{instrument}/metrics.csv",
    output:
        report(
            "results/models/{instrument}/training.png",
            caption="../report/training.rst",
            category="Training",
            labels={"instrument": "{instrument}"},
        ),
    log:
        "logs/training_plot/{instrument}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m trm plot-training {input:q} {output:q} 2> {log:q}"


rule finetune:
    input:
        model="results/models/{instrument}/pretrained.pt",
        labels=finetune_labels,
        synthetic="results/synthetic/{instrument}",
        noise=training_noise_model,
    output:
        **finetune_outputs("{instrument}"),
    log:
        "logs/finetune/{instrument}.log",
    benchmark:
        "logs/benchmarks/finetune/{instrument}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=config["pretrain"]["gpus"],
    params:
        device="cuda" if config["pretrain"]["gpus"] else "cpu",
        settings=setting_options("finetune", ("enabled",)),
        noise=noise_model_option,
        # State a retried or preempted job resumes from (not an output: Snakemake keeps it).
        work_dir="results/models/{instrument}/finetune_work",
    shell:
        "python -m trm --attempts-log logs/finetune/{wildcards.instrument}.attempts.log"
        " finetune --model {input.model:q} --labels {input.labels:q}"
        " --synthetic-dir {input.synthetic:q}/train {params.noise}"
        " --checkpoint {output.checkpoint:q} --metrics {output.metrics:q}"
        " --split-table {output.split:q} --validation-labels {output.validation:q}"
        " --work-dir {params.work_dir:q} {params.settings} --fallback"
        " --device {params.device} --threads {threads} 2> {log:q}"
