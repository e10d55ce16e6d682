"""The report: each section's experiments (`experiments`), section 6 beyond the assignment and its
stored runs (`beyond`, `beyond_tables`), figures (`plots`), what a notebook shows for the PDF
(`paper`: captioned figures and tables, headline numbers) and the PDF build (`pdf`). Imported by
the notebooks; nothing below it imports from here."""
