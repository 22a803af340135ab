-- schema.sql - the example of qiao-sql: the database of 鄂尔多斯市住房公积金中心
-- (the housing provident fund centre, member 12150600MB0L357981/gjj) as
-- its 住房公积金综合业务系统 keeps it, with the column names of the
-- centre's own system (pinyin initials, as such systems name them).  The
-- centre lends 公积金贷款; in a 带押过户 it is the OLD lender (原贷款行) of
-- a seller who still owes a provident-fund loan.  Nothing here was made
-- for Qiao except DK_JQBJ (the payoff quotes and 同意带押函), which the
-- centre keeps like its other 提前还款 records: mapping.conf maps these
-- tables onto qiao.v1.PayoffQuote and friends without any C code.
--
-- Money is NUMERIC(18,2) in 元 as the centre's system keeps it (the
-- mapping converts to fen: CAST(ROUND(x * 100) AS INTEGER)); rates are
-- NUMERIC percent (3.1000 = 3.10 %); dates TEXT 'YYYY-MM-DD' (China
-- Standard Time); instants INTEGER ms UTC.  不动产权证书号 / 登记证明号 are
-- stored with half-width brackets (qiao-sql binds them normalised).

-- 系统参数 (system parameters).
CREATE TABLE XT_CS (
  CSMC TEXT PRIMARY KEY,        -- 参数名称
  CSZ  TEXT NOT NULL,           -- 参数值
  CSSM TEXT                     -- 参数说明
);

-- 个人住房公积金贷款借款合同 (loan contracts), one row per loan.
CREATE TABLE DK_JKHT (
  JKHTBH  TEXT PRIMARY KEY,                     -- 借款合同编号
  JKRXM   TEXT NOT NULL,                        -- 借款人姓名
  JKRZJLX TEXT NOT NULL CHECK (JKRZJLX IN ('01')), -- 借款人证件类型: 01 居民身份证
  JKRZJHM TEXT NOT NULL,                        -- 借款人证件号码
  DKJE    NUMERIC(18,2) NOT NULL CHECK (DKJE > 0),  -- 贷款金额 (元)
  DKYE    NUMERIC(18,2) NOT NULL CHECK (DKYE >= 0), -- 贷款余额 (元), after the last repayment
  DKNLL   NUMERIC(8,4) NOT NULL CHECK (DKNLL > 0),  -- 贷款年利率 (%)
  FKRQ    TEXT NOT NULL,                        -- 放款日期
  DQRQ    TEXT NOT NULL,                        -- 到期日期
  SCHKRQ  TEXT NOT NULL,                        -- 上次还款日期: interest is paid up to it
  YQQS    INTEGER NOT NULL DEFAULT 0,           -- 当前逾期期数
  DKZT    TEXT NOT NULL CHECK (DKZT IN ('01', '02', '03')), -- 贷款状态: 01 正常 02 逾期 03 结清
  BDCDYH  TEXT NOT NULL,                        -- 抵押物 不动产单元号
  BDCQZH  TEXT NOT NULL,                        -- 抵押物 不动产权证书号
  DYZMH   TEXT NOT NULL,                        -- 抵押权 不动产登记证明号
  STYH    TEXT,                                 -- 受托银行 (the bank servicing the loan)
  JQRQ    TEXT                                  -- 结清日期
);
CREATE INDEX DK_JKHT_JKRZJHM ON DK_JKHT (JKRZJHM);

-- 结清报价及同意带押函 (payoff quotes and the consent to transfer with
-- the mortgage in place), one per loan and planned payoff date.
CREATE TABLE DK_JQBJ (
  BJBH   TEXT PRIMARY KEY,                      -- 报价编号
  JKHTBH TEXT NOT NULL REFERENCES DK_JKHT (JKHTBH), -- 借款合同编号
  YJJQRQ TEXT NOT NULL,                         -- 预计结清日期 (interest computed to it)
  BJ     NUMERIC(18,2) NOT NULL,                -- 剩余本金 (元)
  LX     NUMERIC(18,2) NOT NULL,                -- 应付利息 (元)
  FY     NUMERIC(18,2) NOT NULL DEFAULT 0,      -- 费用 (公积金贷款提前结清不收违约金)
  JQJE   NUMERIC(18,2) NOT NULL,                -- 结清金额 = BJ + LX + FY
  YXQZ   TEXT NOT NULL,                         -- 报价有效期至 (the date printed)
  SFTY   TEXT NOT NULL CHECK (SFTY IN ('0', '1')), -- 是否同意带押过户
  TYHBH  TEXT UNIQUE,                           -- 同意带押函编号 (when SFTY = '1')
  CHRQ   TEXT,                                  -- 出函日期
  TYTJ   TEXT,                                  -- 同意条件
  BTYYY  TEXT,                                  -- 不同意原因
  HZT    TEXT NOT NULL DEFAULT '01' CHECK (HZT IN ('01', '02', '03')), -- 函状态: 01 有效 02 已撤回 03 已结清
  CHYY   TEXT,                                  -- 撤回原因 (qiao.v1.UnwindReason name)
  CHSM   TEXT,                                  -- 撤回说明
  CHSJ   INTEGER,                               -- 撤回时间 (ms UTC)
  QQF    TEXT NOT NULL,                         -- 请求方 (the Qiao member that asked)
  BJH    TEXT,                                  -- 办件编号 (case id)
  JBR    TEXT,                                  -- 经办人 (user id at the requester)
  CJSJ   INTEGER NOT NULL,                      -- 创建时间 (ms UTC)
  UNIQUE (JKHTBH, YJJQRQ)
);

-- 还款明细 (repayments), including a payoff paid from escrow.
CREATE TABLE DK_HKMX (
  HKLSH  TEXT PRIMARY KEY,                      -- 还款流水号 (for escrow payments: the payment_no)
  JKHTBH TEXT NOT NULL REFERENCES DK_JKHT (JKHTBH), -- 借款合同编号
  HKLX   TEXT NOT NULL CHECK (HKLX IN ('01', '02', '03')), -- 还款类型: 01 正常还款 02 提前部分还款 03 提前结清
  HKJE   NUMERIC(18,2) NOT NULL CHECK (HKJE > 0), -- 还款金额 (元)
  HKSJ   INTEGER NOT NULL,                      -- 还款时间 (paid at, ms UTC)
  BJBH   TEXT REFERENCES DK_JQBJ (BJBH),        -- 据以结清的报价编号
  JQZMBH TEXT UNIQUE,                           -- 结清证明编号 (when it settles the loan)
  JZSJ   INTEGER NOT NULL                       -- 记账时间 (ms UTC)
);

-- The centre's own rule, kept in the database: no payment on a settled loan.
CREATE TRIGGER DK_HKMX_YJQ BEFORE INSERT ON DK_HKMX
WHEN (SELECT DKZT FROM DK_JKHT WHERE JKHTBH = NEW.JKHTBH) = '03'
BEGIN
  SELECT RAISE(ABORT, '贷款已结清，不再收款');
END;
