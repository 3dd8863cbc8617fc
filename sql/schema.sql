-- The reports for a real SQL Server: database ExportDemo, dbo.spGenerateData @RowCount INT and
-- dbo.spSalesOrders @From DATE, @To DATE, @Region NVARCHAR(20) = NULL.
--
-- spGenerateData computes every value from the row number n exactly as sql/report_data.py
-- computes it (raw_row, NULL_COLUMNS, NVARCHAR_VALUES); spSalesOrders from the order number n
-- exactly as sql/sales_data.py does (raw_order, order_row, summary).  tests/test_sql/test_schema.py
-- parses this script with sqlglot's T-SQL dialect, checks the column names and types against
-- report_data.COLUMNS and sales_data.ORDER_COLUMNS/SUMMARY_COLUMNS, and evaluates the SELECTs'
-- formulas with SQL Server's rules against the Python definitions.
-- spGenerateData: NULLs depend on n % 16 only: slot 0 makes every column but Id NULL, and each
-- other nullable column has one slot of its own.  The upper bound 10000000 is
-- report_data.MAX_ROW_COUNT (above Excel's 1,048,576 rows per sheet).
--
-- Permissions: the export API's login needs EXECUTE on the procedures and nothing else (the
-- procedures reach dbo.fnNumbers through ownership chaining; #Orders lives in tempdb), as
-- docs/catalog.md shows:
--   CREATE ROLE report_exporter;
--   GRANT EXECUTE ON OBJECT::dbo.spGenerateData TO report_exporter;
--   GRANT EXECUTE ON OBJECT::dbo.spSalesOrders TO report_exporter;
--   ALTER ROLE report_exporter ADD MEMBER export_api;   -- the API's database user

IF DB_ID(N'ExportDemo') IS NULL
    CREATE DATABASE ExportDemo;
GO

USE ExportDemo;
GO

-- The numbers 1 .. @Count (BIGINT n), set-based: 10 x 10 -> 100, 100 x 100 -> 10^4,
-- 10^4 x 10^4 -> 10^8 rows at most, above both procedures' largest count.  An inline function:
-- the optimizer expands it into the caller's plan, so TOP stops the cross joins early.
CREATE OR ALTER FUNCTION dbo.fnNumbers (@Count BIGINT)
RETURNS TABLE
AS
RETURN
    WITH L0 AS (SELECT c FROM (VALUES (1), (1), (1), (1), (1), (1), (1), (1), (1), (1)) AS t (c)),
    L1 AS (SELECT 1 AS c FROM L0 AS a CROSS JOIN L0 AS b),
    L2 AS (SELECT 1 AS c FROM L1 AS a CROSS JOIN L1 AS b),
    L3 AS (SELECT 1 AS c FROM L2 AS a CROSS JOIN L2 AS b)
    SELECT TOP (@Count) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS BIGINT) AS n
    FROM L3;
GO

CREATE OR ALTER PROCEDURE dbo.spGenerateData
    @RowCount INT
AS
BEGIN
    SET NOCOUNT ON;

    IF @RowCount IS NULL OR @RowCount < 1 OR @RowCount > 10000000
        THROW 50000, N'@RowCount must be between 1 and 10000000.', 1;

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
    FROM dbo.fnNumbers(@RowCount)
    ORDER BY n;
END;
GO

-- The sales report: 40 orders a day from 2020-01-01 (order n on day n / 40), each value integer
-- arithmetic on n (sql/sales_data.py: raw_order).  SET NOCOUNT OFF on purpose: the client sees
-- the INSERT's row count (a DONEINPROC before the first result set), the PRINT (an INFO token)
-- and each SELECT's count, the shape many real reporting procedures have.
CREATE OR ALTER PROCEDURE dbo.spSalesOrders
    @From DATE,
    @To DATE,
    @Region NVARCHAR(20) = NULL
AS
BEGIN
    SET NOCOUNT OFF;

    IF @From IS NULL OR @To IS NULL
        THROW 50000, N'@From and @To must not be NULL.', 1;
    IF @From > @To
        THROW 50000, N'@From must not be after @To.', 1;
    IF @From < CAST('2020-01-01' AS DATE) OR @To > CAST('2039-12-31' AS DATE)
        THROW 50000, N'@From and @To must be between 2020-01-01 and 2039-12-31.', 1;
    IF DATEDIFF(DAY, @From, @To) + 1 > 3660
        THROW 50000, N'@From to @To must not span more than 3660 days.', 1;

    -- The orders of the range are n = @First .. @First + @Count - 1.
    DECLARE @First BIGINT = CAST(DATEDIFF(DAY, CAST('2020-01-01' AS DATE), @From) AS BIGINT) * 40;
    DECLARE @Count BIGINT = CAST(DATEDIFF(DAY, @From, @To) + 1 AS BIGINT) * 40;

    CREATE TABLE #Orders (
        OrderId INT NOT NULL PRIMARY KEY,
        OrderDate DATE NOT NULL,
        Region NVARCHAR(20) COLLATE DATABASE_DEFAULT NOT NULL,  -- not tempdb's collation
        Customer NVARCHAR(40) COLLATE DATABASE_DEFAULT NOT NULL,
        Quantity INT NOT NULL,
        UnitPrice DECIMAL(10, 2) NOT NULL,
        Amount DECIMAL(12, 2) NOT NULL
    );

    WITH Orders AS (
        SELECT
            CAST(n + 1 AS INT) AS OrderId,
            CAST(DATEADD(DAY, CAST(n / 40 AS INT), CAST('2020-01-01' AS DATE)) AS DATE) AS OrderDate,
            CAST(CHOOSE((3 * (n / 40) + n * 7919 % 9973 % 4) % 5 + 1,
                        N'Central', N'East', N'North', N'South', N'West') AS NVARCHAR(20)) AS Region,
            CAST(CONCAT(N'Customer ', RIGHT(CONCAT('00', n * 37 % 500 + 1), 3)) AS NVARCHAR(40))
                AS Customer,
            CAST((n * 13 + n / 40) % 20 + 1 AS INT) AS Quantity,
            CAST(CAST(n * 7907 % 99901 + 99 AS DECIMAL(12, 2)) / 100 AS DECIMAL(10, 2)) AS UnitPrice
        FROM (SELECT @First - 1 + n AS n FROM dbo.fnNumbers(@Count)) AS OrderNumbers
    )
    INSERT INTO #Orders (OrderId, OrderDate, Region, Customer, Quantity, UnitPrice, Amount)
    SELECT OrderId, OrderDate, Region, Customer, Quantity, UnitPrice,
           CAST(Quantity * UnitPrice AS DECIMAL(12, 2)) AS Amount
    FROM Orders
    WHERE @Region IS NULL OR Region = @Region;

    DECLARE @Orders INT = @@ROWCOUNT;
    PRINT CONCAT(N'Sales orders: ', @Orders, N' orders from ', CONVERT(CHAR(10), @From, 23),
                 N' to ', CONVERT(CHAR(10), @To, 23), N'.');

    SELECT OrderId, OrderDate, Region, Customer, Quantity, UnitPrice, Amount
    FROM #Orders
    ORDER BY OrderId;

    -- One row per region that has orders; ISNULL makes the aggregates NOT NULL in the metadata.
    SELECT
        Region,
        ISNULL(COUNT(*), 0) AS Orders,
        ISNULL(SUM(CAST(Quantity AS BIGINT)), 0) AS Quantity,
        ISNULL(CAST(SUM(Amount) AS DECIMAL(18, 2)), 0) AS Amount
    FROM #Orders
    GROUP BY Region
    ORDER BY Region;
END;
GO
