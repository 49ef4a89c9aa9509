"""``rvnpu examples``: the firmware examples shipped with rvnpu, which ``rvnpu sim --example
NAME`` runs without the user knowing where pip put them."""


HELP = "list the firmware examples `rvnpu sim --example NAME` runs"


def add_arguments(parser):
    pass


def run(args):
    from rvnpu.firmware.build import describe_examples, find_example

    descriptions = describe_examples()
    width = max(map(len, descriptions), default=0)
    text_width = max(map(len, descriptions.values()), default=0)
    for name, description in descriptions.items():
        print(f"{name:{width}}  {description:{text_width}}  {find_example(name)}")
    return 0
