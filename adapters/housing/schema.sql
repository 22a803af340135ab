-- schema.sql - the housing bureau's own database (qiao-housing): the
-- 楼盘表 of existing housing, 存量房买卖合同网签备案 (contract filing) and
-- 存量房交易资金监管 (escrow).
--
-- Money is INTEGER fen, areas INTEGER dm², dates TEXT 'YYYY-MM-DD' (China
-- Standard Time), instants INTEGER ms UTC.  Certificate numbers are
-- stored normalised (half-width brackets).
--
-- Escrow: the 监管金额 of an agreement is the money under supervision in
-- its 监管子账户 from the signing on (the buyer's own funds paid in at
-- signing, the new lender's loan committed to it; the 监管银行 reports
-- the credits through its own reconciliation, outside Qiao).  Payments
-- out of it (PAYOFF to the old lender, then REMAINDER to the seller) are
-- checked against its balance; a release refunds the balance.

-- 楼盘表 (building register) of existing housing, kept in step with the
-- registry: the unit, its certificate and whether trading is restricted.
CREATE TABLE house (
  unit_no             TEXT PRIMARY KEY,          -- 不动产单元号 (BDCDYH)
  cert_no             TEXT NOT NULL,             -- 不动产权证书号 (BDCQZH)
  address             TEXT NOT NULL,             -- 房屋坐落
  building_area_dm2   INTEGER NOT NULL CHECK (building_area_dm2 > 0), -- 建筑面积
  usage               TEXT NOT NULL,             -- 规划用途
  restricted          INTEGER NOT NULL DEFAULT 0 CHECK (restricted IN (0, 1)), -- 限制交易 (查封 / 异议 / 禁止转让)
  restriction_reason  TEXT                       -- 限制原因
);

-- 产权人 (owners) of each house: the only possible sellers.
CREATE TABLE house_owner (
  unit_no  TEXT NOT NULL REFERENCES house(unit_no),
  id_type  TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no    TEXT NOT NULL,
  name     TEXT NOT NULL,
  PRIMARY KEY (unit_no, id_no)
);

-- 资金监管专户 (the bureau's escrow accounts at the 监管银行).
CREATE TABLE escrow_bank_account (
  account_no   TEXT PRIMARY KEY,                 -- 监管专户账号
  account_name TEXT NOT NULL,                    -- 户名
  bank_name    TEXT NOT NULL,                    -- 开户行
  bank_code    TEXT,                             -- 开户行行号 (CNAPS)
  bank_uscc    TEXT NOT NULL,                    -- 监管银行 USCC
  active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

-- 存量房买卖合同网签备案 (contract filings), one per 合同编号.
CREATE TABLE contract_filing (
  contract_no       TEXT PRIMARY KEY,            -- 合同编号 (HTBH, idempotency key)
  filing_no         TEXT NOT NULL UNIQUE,        -- 备案编号 (BABH)
  unit_no           TEXT NOT NULL REFERENCES house(unit_no),
  cert_no           TEXT NOT NULL,
  price_fen         INTEGER NOT NULL CHECK (price_fen > 0), -- 成交价 (CJJG)
  payment_method    INTEGER NOT NULL,            -- 付款方式 (PaymentMethod)
  signed_date       TEXT NOT NULL,               -- 签约日期
  building_area_dm2 INTEGER NOT NULL,
  with_mortgage     INTEGER NOT NULL CHECK (with_mortgage IN (0, 1)), -- 带押过户
  status            TEXT NOT NULL CHECK (status IN ('FILED', 'REGISTERED', 'CANCELLED')), -- 已备案 / 已转移登记 / 已撤销
  filed_ms          INTEGER NOT NULL,            -- 备案时间
  new_cert_no       TEXT,                        -- 买方新不动产权证书号 (once registered)
  cancelled_ms      INTEGER,                     -- 撤销时间
  cancel_reason     INTEGER,                     -- UnwindReason
  cancel_note       TEXT,
  request_hash      TEXT NOT NULL,
  requester         TEXT NOT NULL,
  case_id           TEXT
);
CREATE INDEX contract_filing_by_unit ON contract_filing(unit_no, status);

-- 合同当事人 (parties of a filed contract).
CREATE TABLE filing_party (
  contract_no TEXT NOT NULL REFERENCES contract_filing(contract_no),
  role        TEXT NOT NULL CHECK (role IN ('SELLER', 'BUYER')),
  seq         INTEGER NOT NULL,
  name        TEXT NOT NULL,
  id_type     TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no       TEXT NOT NULL,
  PRIMARY KEY (contract_no, role, seq)
);

-- 资金监管协议 (escrow agreements), one per contract.
CREATE TABLE escrow_agreement (
  agreement_no        TEXT PRIMARY KEY,          -- 资金监管协议编号
  contract_no         TEXT NOT NULL UNIQUE REFERENCES contract_filing(contract_no),
  filing_no           TEXT NOT NULL,
  escrow_account_no   TEXT NOT NULL UNIQUE,      -- 监管子账号
  escrow_account_name TEXT NOT NULL,
  escrow_bank_name    TEXT NOT NULL,
  escrow_bank_code    TEXT,
  escrow_amount_fen   INTEGER NOT NULL CHECK (escrow_amount_fen > 0), -- 监管金额
  payoff_amount_fen   INTEGER NOT NULL DEFAULT 0, -- 结清金额 (带押过户)
  payoff_consent_no   TEXT,                      -- 同意带押函编号
  payoff_account_name TEXT, payoff_account_no TEXT, payoff_bank_name TEXT, payoff_bank_code TEXT, -- 结清收款账户
  seller_account_name TEXT NOT NULL, seller_account_no TEXT NOT NULL, seller_bank_name TEXT NOT NULL,
  seller_bank_code    TEXT,                      -- 出卖人收款账户
  refund_account_name TEXT NOT NULL, refund_account_no TEXT NOT NULL, refund_bank_name TEXT NOT NULL,
  refund_bank_code    TEXT,                      -- 退款账户
  old_lender_name     TEXT, old_lender_uscc TEXT, -- 原贷款行
  new_lender_name     TEXT, new_lender_uscc TEXT, -- 新贷款行
  balance_fen         INTEGER NOT NULL CHECK (balance_fen >= 0), -- 监管余额
  paid_out_fen        INTEGER NOT NULL DEFAULT 0, -- 已支付
  status              TEXT NOT NULL CHECK (status IN ('AGREED', 'COMPLETED', 'RELEASED')), -- 监管中 / 支付完毕 / 已解除
  agreed_ms           INTEGER NOT NULL,          -- 签订时间
  released_ms         INTEGER,                   -- 解除时间
  refunded_fen        INTEGER,                   -- 退款金额
  release_reason      INTEGER,                   -- UnwindReason
  release_note        TEXT,
  request_hash        TEXT NOT NULL,
  requester           TEXT NOT NULL,
  case_id             TEXT
);

-- 监管资金支付 (payments out of escrow), one per 付款编号.
CREATE TABLE escrow_payment (
  payment_no        TEXT PRIMARY KEY,            -- 付款编号 (idempotency key)
  agreement_no      TEXT NOT NULL REFERENCES escrow_agreement(agreement_no),
  kind              INTEGER NOT NULL CHECK (kind IN (1, 2)), -- 1 结清 PAYOFF, 2 余款 REMAINDER
  payee_name        TEXT NOT NULL,
  payee_account_no  TEXT NOT NULL,
  payee_bank_name   TEXT NOT NULL,
  amount_fen        INTEGER NOT NULL CHECK (amount_fen > 0),
  new_cert_no       TEXT NOT NULL,               -- 买方新不动产权证书号 (evidence)
  cancellation_slbh TEXT,                        -- 抵押权注销受理编号 (evidence for REMAINDER)
  transaction_no    TEXT NOT NULL UNIQUE,        -- 银行流水号
  paid_ms           INTEGER NOT NULL,
  balance_after_fen INTEGER NOT NULL,            -- 监管余额 after it
  request_hash      TEXT NOT NULL,
  requester         TEXT NOT NULL,
  case_id           TEXT
);

-- 单据编号 (document number sequences).
CREATE TABLE doc_sequence (
  seq_name   TEXT PRIMARY KEY,
  next_value INTEGER NOT NULL
);
