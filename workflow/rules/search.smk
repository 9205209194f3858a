rule search:
    input:
        spectra="results/mzml/{sample}.mzML",
        fasta=search_fasta,
        instrument=instrument_file,
        supplied=supplied_labels,
    output:
        psms="results/{sample}/search.tsv",
        summary="results/{sample}/search.json",
    log:
        "logs/search/{sample}.log",
    benchmark:
        "logs/benchmarks/search/{sample}.tsv"
    conda:
        "../../envs/trm.yaml"
    threads: config["threads"]["search"]
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        settings=search_options(),
        supplied=supplied_labels_option,
    shell:
        "python -m trm search --spectra {input.spectra:q} --fasta {input.fasta:q}"
        " --instrument {input.instrument:q} --run {wildcards.sample}"
        " --psms {output.psms:q} --summary {output.summary:q} {params.supplied}"
        " {params.settings} --threads {threads} 2> {log:q}"
