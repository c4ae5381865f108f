"""openfiles_contracts: the small contracts the engine, the CSI plugin, the mounter,
the operator and the benchmark share.

Standard library only, and no asyncio (the engine runs on trio): each module is
a grammar, a wire format or a parser that more than one part needs, and that
would otherwise exist in one copy per part because the parts may not import
each other. It imports none of them; all of them may import it.
"""
