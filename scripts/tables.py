"""One script for every table rule: the rule's name picks the library function."""

from duomem import model_tables, paper, tables
from duomem.cli import run


def main(sm):
    p, out = sm.params, sm.output
    if sm.rule == "table1":
        tables.table1(p.columns, p.models, p.teacher, out.csv, out.md)
    elif sm.rule == "table3":
        from duomem.models import token_counter

        tables.table3_context(list(zip(p.names, sm.input.banks)), sm.input.references,
                              token_counter(p.token_counter), p.k, out.csv, out.md,
                              selections=list(sm.input.selections))
    elif sm.rule == "table2":
        tables.table2(p.columns, p.models, dict(zip(p.lora_models, sm.input.selections)), out.csv, out.md)
    elif sm.rule == "table4":
        tables.table4(p.rows, out.csv, out.md)
    elif sm.rule == "table5":
        tables.table5(p.rows, out.csv, out.md, main_strategy=p.main_strategy)
    elif sm.rule == "table8":
        tables.table8(p.rows, dict(zip(p.lora_models, sm.input.selections)), out.csv, out.md)
    elif sm.rule == "table6":
        tables.table6(sm.input.stats, p.teacher, out.csv, out.md)
    elif sm.rule == "table9":
        tables.table9(p.pairs, out.csv, out.md)
    elif sm.rule == "table7":
        model_tables.table7(p.rows, out.csv, out.md)
    elif sm.rule == "table10":
        model_tables.table10(p.rows, out.csv, out.md)
    elif sm.rule == "paper_comparison":
        paper.paper_comparison(p.rows, p.models, out.csv, out.md, path=sm.input.paper)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
