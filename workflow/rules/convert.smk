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


rule labels:
    input:
        unpack(label_sources),
    output:
        table="results/labels/{sample}.parquet",
        skipped="results/labels/{sample}.skipped.tsv",
    log:
        "logs/labels/{sample}.log",
    conda:
        "../../envs/trm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        identifications=identifications_option,
    shell:
        "python -m trm labelled-spectra {input.spectra:q} {output.table:q}"
        " {params.identifications} --skipped {output.skipped:q} --run {wildcards.sample}"
        " 2> {log:q}"
