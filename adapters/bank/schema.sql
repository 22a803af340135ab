-- schema.sql - the lender's own database (qiao-bank), one per bank.
--
-- The tables a branch's core banking and credit (信贷) systems keep for
-- 带押过户: the customer file (CIF), the internal risk list, the loan
-- ledger (借据 / 贷款合同台账) with its collateral, the payoff quotes with
-- their 同意带押函, the payoff receipts, the loan applications and their
-- decisions, and the disbursements.  Money is INTEGER fen, rates INTEGER
-- ppm, dates TEXT 'YYYY-MM-DD' (China Standard Time), instants INTEGER ms
-- UTC.  不动产权证书号 / 登记证明号 are stored in their normalised form
-- (half-width brackets).  The same schema serves every bank; the rules
-- that differ (LTV, amounts, rate, validity) are in the bank's --config.

-- 客户信息 (customer information file, CIF).
CREATE TABLE customer (
  cust_no            TEXT PRIMARY KEY,                  -- 客户号
  cust_name          TEXT NOT NULL,                     -- 客户名称 (姓名 / 单位名称)
  id_type            TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')), -- 证件类型
  id_no              TEXT NOT NULL UNIQUE,              -- 证件号码 (居民身份证号码 / USCC)
  phone              TEXT,                              -- 联系电话
  monthly_income_fen INTEGER NOT NULL DEFAULT 0 CHECK (monthly_income_fen >= 0), -- 经核实月收入
  monthly_debt_fen   INTEGER NOT NULL DEFAULT 0 CHECK (monthly_debt_fen >= 0),   -- 现有月还款额 (含他行, 征信)
  opened_date        TEXT NOT NULL                      -- 建档日期
);

-- 风险名单 (internal risk list): borrowers the bank does not lend to.
CREATE TABLE risk_list (
  id_no        TEXT PRIMARY KEY,                        -- 证件号码
  id_type      TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  name         TEXT NOT NULL,                           -- 姓名 / 名称
  list_type    TEXT NOT NULL CHECK (list_type IN ('BLACKLIST', 'WATCH')), -- 黑名单 / 关注名单
  reason       TEXT NOT NULL,                           -- 列入原因
  listed_date  TEXT NOT NULL,                           -- 列入日期
  expires_date TEXT                                     -- 移出日期; NULL = 长期
);

-- 贷款合同台账 (loan ledger): one row per loan contract, with its
-- collateral (抵押物) and the registered mortgage (抵押权).
CREATE TABLE loan_contract (
  contract_no        TEXT PRIMARY KEY,                  -- 贷款合同号
  cust_no            TEXT REFERENCES customer(cust_no), -- 客户号
  borrower_name      TEXT NOT NULL,                     -- 借款人
  borrower_id_type   TEXT NOT NULL CHECK (borrower_id_type IN ('RESIDENT_ID', 'USCC')),
  borrower_id_no     TEXT NOT NULL,                     -- 借款人证件号码
  product            TEXT NOT NULL,                     -- 贷款品种, e.g. 个人住房贷款
  principal_fen      INTEGER NOT NULL CHECK (principal_fen > 0),  -- 合同金额
  outstanding_fen    INTEGER NOT NULL CHECK (outstanding_fen >= 0), -- 剩余本金 (as of the last 还款日)
  annual_rate_ppm    INTEGER NOT NULL CHECK (annual_rate_ppm > 0), -- 执行年利率
  start_date         TEXT NOT NULL,                     -- 起息日
  maturity_date      TEXT NOT NULL,                     -- 到期日
  repay_day          INTEGER NOT NULL CHECK (repay_day BETWEEN 1 AND 28), -- 每月还款日 (interest paid to it)
  classification     TEXT NOT NULL DEFAULT '正常'
                     CHECK (classification IN ('正常', '关注', '次级', '可疑', '损失')), -- 五级分类
  overdue_days       INTEGER NOT NULL DEFAULT 0 CHECK (overdue_days >= 0), -- 逾期天数
  collateral_unit_no TEXT NOT NULL,                     -- 抵押物 不动产单元号 (BDCDYH)
  collateral_cert_no TEXT NOT NULL,                     -- 抵押物 不动产权证书号 (BDCQZH)
  mortgage_proof_no  TEXT NOT NULL,                     -- 不动产登记证明号 (BDCDJZMH)
  mortgage_rank      INTEGER NOT NULL DEFAULT 1,        -- 抵押顺位 (DYSW)
  status             TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SETTLED')), -- 正常 / 已结清
  settlement_no      TEXT UNIQUE,                       -- 结清证明编号
  settled_ms         INTEGER,                           -- 结清时间
  approval_no        TEXT,                              -- 审批编号 (loans this adapter disbursed)
  disbursement_ref   TEXT                               -- 放款请求编号 (loans this adapter disbursed)
);
CREATE INDEX loan_contract_by_borrower ON loan_contract(borrower_id_no);

-- 结清报价及同意带押函 (payoff quotes and consents to transfer with the
-- mortgage).  A repeated request for the same contract, payoff date,
-- consent flag and renewal answers the same quote while it is valid.
CREATE TABLE payoff_quote (
  quote_no            TEXT PRIMARY KEY,                 -- 报价编号
  contract_no         TEXT NOT NULL REFERENCES loan_contract(contract_no),
  seller_id_no        TEXT NOT NULL,                    -- 申请人 (出卖人) 证件号码
  seller_name         TEXT NOT NULL,
  cert_no             TEXT NOT NULL,                    -- 不动产权证书号 (normalised)
  planned_payoff_date TEXT NOT NULL,                    -- 预计结清日期
  interest_from_date  TEXT NOT NULL,                    -- 计息起日 (last 还款日)
  principal_fen       INTEGER NOT NULL,                 -- 剩余本金
  interest_fen        INTEGER NOT NULL,                 -- 应付利息 to planned_payoff_date
  fees_fen            INTEGER NOT NULL,                 -- 提前还款违约金
  payoff_amount_fen   INTEGER NOT NULL CHECK (payoff_amount_fen > 0), -- 结清金额
  valid_until_ms      INTEGER NOT NULL,                 -- 报价有效期至
  consent_requested   INTEGER NOT NULL CHECK (consent_requested IN (0, 1)),
  consent_status      TEXT NOT NULL CHECK (consent_status IN ('NONE', 'GIVEN', 'DECLINED', 'WITHDRAWN')),
  consent_no          TEXT UNIQUE,                      -- 同意带押函编号
  consent_date        TEXT,                             -- 出函日期
  consent_conditions  TEXT,                             -- 同意条件
  decline_reason      TEXT,                             -- 不同意原因
  withdrawn_ms        INTEGER,                          -- 撤回时间
  withdraw_reason     INTEGER,                          -- UnwindReason
  withdraw_note       TEXT,
  previous_quote_no   TEXT REFERENCES payoff_quote(quote_no), -- 原报价编号 (renewal)
  status              TEXT NOT NULL DEFAULT 'VALID' CHECK (status IN ('VALID', 'SUPERSEDED', 'SETTLED')),
  requester           TEXT NOT NULL,                    -- calling member
  case_id             TEXT,                             -- 办件编号
  created_ms          INTEGER NOT NULL
);
CREATE INDEX payoff_quote_by_contract ON payoff_quote(contract_no, planned_payoff_date);

-- 结清款入账 (payoff receipts), one per escrow payment number.
CREATE TABLE payoff_receipt (
  payment_no          TEXT PRIMARY KEY,                 -- 付款编号 (idempotency key)
  quote_no            TEXT NOT NULL REFERENCES payoff_quote(quote_no),
  contract_no         TEXT NOT NULL REFERENCES loan_contract(contract_no),
  amount_paid_fen     INTEGER NOT NULL CHECK (amount_paid_fen > 0), -- 本次入账金额
  paid_ms             INTEGER NOT NULL,                 -- 付款时间
  owed_fen            INTEGER NOT NULL,                 -- 应结清金额 at paid_ms
  received_total_fen  INTEGER NOT NULL,                 -- 累计实收 for the quote
  shortfall_fen       INTEGER NOT NULL,                 -- 尚欠金额
  settled             INTEGER NOT NULL CHECK (settled IN (0, 1)),
  settlement_no       TEXT,                             -- 结清证明编号
  settled_ms          INTEGER,
  request_hash        TEXT NOT NULL,                    -- SHA-256 of the request body
  requester           TEXT NOT NULL,
  case_id             TEXT,
  recorded_ms         INTEGER NOT NULL
);

-- 贷款申请及审批 (loan applications and decisions).
CREATE TABLE loan_application (
  application_no       TEXT PRIMARY KEY,                -- 申请编号 (idempotency key)
  request_hash         TEXT NOT NULL,                   -- SHA-256 of the request body
  unit_no              TEXT NOT NULL,                   -- 不动产单元号 (BDCDYH)
  cert_no              TEXT NOT NULL,                   -- 不动产权证书号 (normalised)
  contract_no          TEXT,                            -- 网签合同编号
  price_fen            INTEGER NOT NULL,                -- 成交价
  amount_fen           INTEGER NOT NULL,                -- 申请金额
  term_months          INTEGER NOT NULL,                -- 申请期限
  authorisation_no     TEXT NOT NULL,                   -- 征信授权书编号
  ltv_ppm              INTEGER NOT NULL,                -- 贷款价值比
  monthly_payment_fen  INTEGER NOT NULL,                -- 月供 (等额本息)
  decision             TEXT NOT NULL CHECK (decision IN ('APPROVED', 'DECLINED')),
  decline_reason       TEXT,                            -- 拒贷原因
  approval_no          TEXT UNIQUE,                     -- 审批编号
  annual_rate_ppm      INTEGER,                         -- 年利率
  expected_rank        INTEGER,                         -- 预期抵押顺位
  loan_contract_no     TEXT UNIQUE,                     -- 借款合同号
  mortgage_contract_no TEXT UNIQUE,                     -- 抵押合同号
  secured_amount_fen   INTEGER,                         -- 被担保主债权数额
  debt_start_date      TEXT,                            -- 债务履行期限起
  debt_end_date        TEXT,                            -- 债务履行期限止
  guarantee_scope      TEXT,                            -- 担保范围
  valid_until_ms       INTEGER,                         -- 批复有效期至
  decided_ms           INTEGER NOT NULL,                -- 决定时间
  status               TEXT NOT NULL CHECK (status IN ('APPROVED', 'DECLINED', 'REVOKED', 'DISBURSED')),
  revoked_ms           INTEGER,                         -- 撤销时间
  revoke_reason        INTEGER,                         -- UnwindReason
  revoke_note          TEXT,
  requester            TEXT NOT NULL,
  case_id              TEXT
);

-- 借款人 (borrowers of an application).
CREATE TABLE loan_borrower (
  application_no TEXT NOT NULL REFERENCES loan_application(application_no),
  seq            INTEGER NOT NULL,                      -- 0 = 主借款人
  name           TEXT NOT NULL,
  id_type        TEXT NOT NULL CHECK (id_type IN ('RESIDENT_ID', 'USCC')),
  id_no          TEXT NOT NULL,
  PRIMARY KEY (application_no, seq)
);

-- 放款 (disbursements into escrow), one per disbursement reference.
CREATE TABLE disbursement (
  disbursement_ref    TEXT PRIMARY KEY,                 -- 放款请求编号 (idempotency key)
  request_hash        TEXT NOT NULL,
  approval_no         TEXT NOT NULL UNIQUE REFERENCES loan_application(approval_no), -- one payout per approval
  loan_contract_no    TEXT NOT NULL,                    -- 借款合同号
  amount_fen          INTEGER NOT NULL CHECK (amount_fen > 0), -- 放款金额
  escrow_account_name TEXT NOT NULL,                    -- 监管账户 户名
  escrow_account_no   TEXT NOT NULL,                    -- 监管账号
  escrow_bank_name    TEXT NOT NULL,                    -- 开户行
  escrow_bank_code    TEXT,                             -- 开户行行号
  escrow_agreement_no TEXT NOT NULL,                    -- 资金监管协议编号
  mortgage_proof_no   TEXT NOT NULL,                    -- 新抵押 不动产登记证明号 (normalised)
  transaction_no      TEXT NOT NULL UNIQUE,             -- 放款流水号
  disbursed_ms        INTEGER NOT NULL,                 -- 放款时间
  requester           TEXT NOT NULL,
  case_id             TEXT
);

-- 单据编号 (document number sequences).
CREATE TABLE doc_sequence (
  seq_name   TEXT PRIMARY KEY,
  next_value INTEGER NOT NULL
);
