"""x86 exception and interrupt vectors (Intel SDM vol. 3A, 6.3.1 table 6-1) and the classes
the double-fault rules use (table 6-5)."""

DE, DB, NMI, BP, OF, BR, UD, NM, DF = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS, GP, PF = 10, 11, 12, 13, 14
MF, AC, MC, XM, CP = 16, 17, 18, 19, 21

# Exceptions that push an error code.
ERROR_CODE_VECTORS = frozenset({DF, TS, NP, SS, GP, PF, AC, CP, 29, 30})
# Contributory exceptions: two of them in a row (or #PF then one of them, or #PF twice) make #DF.
CONTRIBUTORY = frozenset({DE, TS, NP, SS, GP})

MNEMONIC = {DE: "#DE", DB: "#DB", NMI: "NMI", BP: "#BP", OF: "#OF", BR: "#BR", UD: "#UD", NM: "#NM",
            DF: "#DF", TS: "#TS", NP: "#NP", SS: "#SS", GP: "#GP", PF: "#PF", MF: "#MF", AC: "#AC",
            MC: "#MC", XM: "#XM", CP: "#CP"}

# #PF error code bits (SDM 3A 4.7).
PF_PROTECTION = 1 << 0      # 0: the page was not present; 1: a protection violation
PF_WRITE = 1 << 1
PF_USER = 1 << 2
PF_FETCH = 1 << 4


def vector_name(vector: int) -> str:
    return MNEMONIC.get(vector, f"vector {vector:#x}")
