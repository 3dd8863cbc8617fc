-- The report for a real SQL Server: database ExportDemo and dbo.spGenerateData @RowCount INT.
--
-- Every value is computed from the row number n exactly as sql/report_data.py computes it
-- (raw_row, NULL_COLUMNS, NVARCHAR_VALUES); tests/test_sql/test_schema.py parses this script
-- with sqlglot's T-SQL dialect and checks the column names and types against report_data.COLUMNS.
-- NULLs depend on n % 16 only: slot 0 makes every column but Id NULL, and each other nullable
-- column has one slot of its own.
-- The upper bound 10000000 is report_data.MAX_ROW_COUNT (above Excel's 1,048,576 rows per sheet).

IF DB_ID(N'ExportDemo') IS NULL
    CREATE DATABASE ExportDemo;
GO

USE ExportDemo;
GO

CREATE OR ALTER PROCEDURE dbo.spGenerateData
    @RowCount INT
AS
BEGIN
    SET NOCOUNT ON;

    IF @RowCount IS NULL OR @RowCount < 1 OR @RowCount > 10000000
        THROW 50000, N'@RowCount must be between 1 and 10000000.', 1;

    -- Set-based numbers: 10 x 10 -> 100, 100 x 100 -> 10^4, 10^4 x 10^4 -> 10^8 >= the maximum.
    WITH L0 AS (SELECT c FROM (VALUES (1), (1), (1), (1), (1), (1), (1), (1), (1), (1)) AS t (c)),
    L1 AS (SELECT 1 AS c FROM L0 AS a CROSS JOIN L0 AS b),
    L2 AS (SELECT 1 AS c FROM L1 AS a CROSS JOIN L1 AS b),
    L3 AS (SELECT 1 AS c FROM L2 AS a CROSS JOIN L2 AS b),
    Nums AS (
        SELECT TOP (@RowCount) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS BIGINT) AS n
        FROM L3
    )
    SELECT
        CAST(n AS INT) AS Id,
        CAST(CASE WHEN n % 16 IN (0, 3) THEN NULL
                  ELSE (n * 7919) % 100000 - 50000 END AS INT) AS ColInt,
        CAST(CASE WHEN n % 16 IN (0, 5) THEN NULL
                  ELSE CAST(9007199254740993 AS BIGINT) * (n % 3 - 1) + n END AS BIGINT) AS ColBigInt,
        CAST(CASE WHEN n % 16 IN (0, 7) THEN NULL
                  ELSE CAST((n * 12345679) % CAST(1000000000000 AS BIGINT) - CAST(500000000000 AS BIGINT)
                            AS DECIMAL(38, 4)) / 10000
             END AS DECIMAL(18, 4)) AS ColDecimal,
        CAST(CASE WHEN n % 16 IN (0, 9) THEN NULL
                  ELSE CONCAT('Item-', RIGHT(CONCAT('0000000', n), 8)) END AS VARCHAR(100)) AS ColVarchar,
        CAST(CASE WHEN n % 16 IN (0, 11) THEN NULL
                  ELSE CHOOSE(n % 8 + 1, N'Zürich', N'Kraków', N'São Paulo', N'Αθήνα', N'Москва',
                              N'東京', N'Straße ½ €', N'Rakete 🚀') END AS NVARCHAR(100)) AS ColNVarchar,
        CAST(CASE WHEN n % 16 IN (0, 12) THEN NULL
                  ELSE DATEADD(DAY, CAST(n % 3653 AS INT), CAST('2020-01-01' AS DATE)) END AS DATE) AS ColDate,
        CAST(CASE WHEN n % 16 IN (0, 13) THEN NULL
                  ELSE DATEADD(MILLISECOND, CAST((n * 7777) % 86400000 AS INT),
                               DATEADD(DAY, CAST(n % 1000 AS INT), CAST('2024-01-01' AS DATETIME2(3))))
             END AS DATETIME2(3)) AS ColDateTime,
        CAST(CASE WHEN n % 16 IN (0, 14) THEN NULL ELSE n % 2 END AS BIT) AS ColBit,
        CAST(CASE WHEN n % 16 IN (0, 15) THEN NULL
                  ELSE CAST((n * 37) % 100003 - 50000 AS FLOAT) / 64 END AS FLOAT) AS ColFloat
    FROM Nums
    ORDER BY n;
END;
GO
