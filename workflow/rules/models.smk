rule fetch_model:
    output:
        model=directory(dag.PATHS["model"]),
    params:
        # the seed joins the source only for random weights, so other studies' params stay as they were
        source=PARAMS["model_source"]
        + (f":{PARAMS['random_weights_seed']}" if PARAMS["model_source"] == "random" else ""),
        path=lambda wildcards: PARAMS["model_paths"].get(wildcards.model, ""),
    conda:
        "../../envs/whisperbench.yaml"
    log:
        "logs/fetch_model/{model}.log",
    shell:
        script("fetch_model") + " --model {wildcards.model} --out {output.model} --log {log}"
