"""A table's entry named by a setting "name" or "name:N" (a posterior family with its flow steps, a prior with its
components): one parser for every such table, and one wording of its errors."""

import re


def entry(spec, table, kind, unit, maximum, hint):
    """table[name] for spec "name", or its entry of that size for "name:N": table = {name: (the entry without a
    size or None, a function of the size or None)}; kind ("posterior", "prior") and unit ("steps", "components")
    word the errors, hint says in the first how sizes are written; N from 1 to maximum. ValueError in one line
    for anything else (N is read only up to one digit more than maximum has, so a huge number is never parsed)."""
    match = re.fullmatch(rf"([a-z-]+)(?::([0-9]{{1,{len(str(maximum)) + 1}}}))?", spec)
    if not match or match.group(1) not in table:
        raise ValueError(f"{kind} is one of {', '.join(table)} ({hint}), not {spec!r}")
    name, size = match.groups()
    plain, sized = table[name]
    if size is None:
        if plain is None:
            raise ValueError(f"the {name} {kind} needs its {unit}, such as {name}:10")
        return plain
    if sized is None:
        raise ValueError(f"the {name} {kind} has no size; write {name}")
    if not 1 <= int(size) <= maximum:
        raise ValueError(f"a {name} {kind} has 1 to {maximum} {unit}, not {int(size)}")
    return sized(int(size))
