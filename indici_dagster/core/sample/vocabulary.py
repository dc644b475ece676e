"""The made-up vocabulary of sample files: realistic values by column name, the code tables,
and syntactically valid test NHI numbers. Nothing here is a real person or a real record."""

import pyarrow as pa

_NHI_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # NHI numbers never use I or O
_ETHNICITIES = [
    (11, "New Zealand European"), (12, "Other European"), (21, "Māori"), (31, "Samoan"),
    (32, "Cook Islands Māori"), (33, "Tongan"), (34, "Niuean"), (35, "Tokelauan"), (36, "Fijian"),
    (37, "Other Pacific Peoples"), (41, "Southeast Asian"), (42, "Chinese"), (43, "Indian"),
    (44, "Other Asian"), (51, "Middle Eastern"), (52, "Latin American"), (53, "African"),
    (61, "Other Ethnicity"), (94, "Don't Know"), (95, "Refused to Answer"), (99, "Not Stated"),
]  # fmt: skip
_VACCINES = [
    ("HEXA", "DTaP-IPV-HepB/Hib (Infanrix-hexa)", 3), ("PCV", "Pneumococcal conjugate", 3),
    ("ROTA", "Rotavirus", 2), ("MMR", "Measles, mumps and rubella", 2), ("VAR", "Varicella", 1),
    ("MENB", "Meningococcal B", 3), ("HPV", "Human papillomavirus", 2), ("TDAP", "Tdap", 1),
    ("FLU", "Influenza", None), ("HZV", "Herpes zoster (Shingrix)", 2), ("COVID", "COVID-19", None),
]  # fmt: skip
TEXT_POOLS: dict[str, list[str]] = {  # matched against the end of the source column name
    "FirstName": ["Aroha", "Wiremu", "Mere", "Tāne", "Hēmi", "Olivia", "Liam", "Sione", "Priya"],
    "FamilyName": ["Ngata", "Te Whāiti", "Smith", 'O\'Neil, "Jo"', "Tuilagi", "Patel", "Chen"],
    "ProviderName": ["Dr Aroha Ngata", "Dr Sione Fifita", "Mere Tuilagi RN", "Dr Wei Chen"],
    "Suburb": ["Ngāti Porou", "Whanganui-a-Tara", "Ōtautahi", "Porirua", "Kirikiriroa", "Ōtepoti"],
    "Gender": ["F", "M", "X", "U"],
    "ProviderType": ["GP", "Practice Nurse", "Nurse Practitioner", "Locum GP"],
    "AppointmentType": ["Standard 15 min", "Long consult", "Nurse clinic", "Immunisation"],
    "InvoiceStatus": ["Draft", "Issued", "Part paid", "Paid", "Written off"],
    "Status": ["Booked", "Arrived", "Completed", "Did not attend", "Cancelled"],
    "MedicineName": ["Paracetamol", "Amoxicillin", "Metformin", "Atorvastatin", "Salbutamol"],
    "Strength": ["500 mg", "20 mg", "100 mcg/dose", "250 mg/5 mL"],
    "Instructions": ["Take 1 tablet twice daily", "1-2 puffs when required, max 8/day"],
    "DiagnosisCode": ["44054006", "195967001", "38341003", "35489007", "68566005"],
    "VaccineCode": [code for code, _, _ in _VACCINES],
    "ServiceCode": ["CONS", "NURSE", "ACC1", "SCRIPT", "DRESS", "ECG"],
    "Site": ["Left deltoid", "Right deltoid", "Left thigh", "Oral"],
}
INT_POOLS: dict[str, list[int]] = {  # the same, for integer columns
    "EthnicityCode": [code for code, _ in _ETHNICITIES],
    "DurationMinutes": [10, 15, 15, 15, 20, 30, 45],
    "PracticeID": [101, 102, 103],
}
TRUE_RATES = {"Deceased": 0.03, "Active": 0.9, "Overseas": 0.05}
"""Share of true values of boolean columns whose name contains the key; others: 0.5."""


def nhi_number(number: int) -> str:
    """A syntactically valid, made-up NHI (AAANNNN with check digit); 4 in 5 start with `Z`."""
    number = number * 7919 % 576_000  # scramble consecutive IDs; 7919 is prime
    while True:
        first = "Z" if number % 5 else _NHI_LETTERS[number // 5 % 24]
        letters = first + _NHI_LETTERS[number // 24 % 24] + _NHI_LETTERS[number % 24]
        digits = f"{number // 576 % 1000:03d}"
        values = [_NHI_LETTERS.index(c) + 1 for c in letters] + [int(d) for d in digits]
        remainder = sum(v * w for v, w in zip(values, range(7, 1, -1), strict=True)) % 11
        if remainder:
            return f"{letters}{digits}{(11 - remainder) % 10}"
        number += 1  # a remainder of 0 has no valid check digit


def static_table(dataset: str) -> pa.Table:
    """A full snapshot of a code table (made-up generic codes for unknown datasets)."""
    if dataset == "EthnicityCode":
        codes, names = zip(*_ETHNICITIES, strict=True)
        return pa.table({
            "EthnicityCode": pa.array(codes, pa.int32()), "Description": list(names),
            "Level1Code": pa.array([c // 10 for c in codes], pa.int32()),
        })  # fmt: skip
    if dataset == "VaccineCode":
        codes, names, doses = zip(*_VACCINES, strict=True)
        return pa.table({
            "VaccineCode": list(codes), "Description": list(names),
            "ScheduledDoses": pa.array(doses, pa.int32()), "IsFunded": [True] * len(codes),
        })  # fmt: skip
    return pa.table({"Code": ["A1", "B2", "C3"], "Description": ["Alpha", 'Bēta, "b"', None]})
