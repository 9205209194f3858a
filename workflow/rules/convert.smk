rule convert:
    input:
        sample_spectra,
    output:
        "results/mzml/{sample}.mzML",
    log:
        "logs/convert/{sample}.log",
    benchmark:
        "logs/benchmarks/convert/{sample}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["convert"]
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m trm convert {input:q} {output:q} 2> {log:q}"
